package seed

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/quote"
	"github.com/pglink/pglink/internal/report"
)

// DefaultSplitBytes is the size above which a table is copied in ranges.
const DefaultSplitBytes = 256 << 20

// CopyOptions say what to copy and how.
type CopyOptions struct {
	Source, Target *pgx.ConnConfig
	// Snapshot is the exported snapshot every source session reads
	// (SET TRANSACTION SNAPSHOT). Empty: the first session exports one
	// itself, which makes the copy consistent but not tied to any slot.
	Snapshot   string
	Tables     []catalog.Table
	Jobs       int   // parallel sessions on each side; runtime.NumCPU() when 0
	SplitBytes int64 // relations bigger than this are copied in ranges; when 0, pglink decides (splitFor)
	// TextFormat forces COPY's text format, which converts between column
	// types of different but compatible definitions (a target made by hand).
	// Otherwise binary is used wherever it is portable (see
	// catalog.Column.BinaryPortable) and text for the other tables.
	TextFormat bool
	// Progress receives reports from the job goroutines, at most about
	// four a second per job and once when a part is done. It must be safe
	// for concurrent use. It may be nil.
	Progress func(report.CopyProgress)
	// TableDone is called once per table when every part of it is
	// committed on the target, one call at a time. An error stops the copy.
	// It may be nil. The parts commit without waiting for the WAL flush
	// (see connectTarget): a record of the table that TableDone commits on
	// the target with synchronous_commit on makes them durable too.
	TableDone func(ctx context.Context, t catalog.Table, rows, bytes int64) error
	Logger    *slog.Logger
	// StallTimeout gives up a part whose copy moved no byte for this long,
	// with an endpoint.SilentError; DefaultStallTimeout when 0.
	StallTimeout time.Duration
}

// Stats sum up a copy.
type Stats struct {
	Tables, Parts int
	Rows, Bytes   int64 // Bytes counts the COPY stream, not the tables' size on disk
	Elapsed       time.Duration
}

// tableState counts what is left of one table.
type tableState struct {
	table       catalog.Table
	parts       int // parts not yet committed
	rows, bytes int64
}

// copier is one Copy in progress.
type copier struct {
	o      CopyOptions
	start  time.Time
	whole  string     // why no table is split, when so (see splitFor)
	mu     sync.Mutex // guards stats and every tableState
	stats  Stats
	doneMu sync.Mutex // makes TableDone calls one at a time
}

// Copy copies the tables' rows from source to target. It opens Jobs source
// sessions that all import the snapshot, then calls imported (the caller
// may now release the snapshot's exporting session: an imported snapshot
// lives as long as the importing transaction), then copies parts, largest
// first. Each part is one target transaction, so a killed process leaves
// only whole, committed parts, and the caller empties a table before
// copying it again: the target's tables must be empty, and a table copied
// in one part is emptied once more in its copy's transaction (FREEZE). The first error cancels every job and is returned.
// imported is not called when the sessions cannot be opened.
func Copy(ctx context.Context, o CopyOptions, imported func()) (Stats, error) {
	c := newCopier(o)
	if c.whole != "" {
		c.o.Logger.Info("copying whole tables", "reason", c.whole)
	}
	jobs := max(1, min(c.o.Jobs, estimateParts(o.Tables, c.o.SplitBytes, c.o.Jobs)))
	g, gctx := errgroup.WithContext(ctx)
	sources, err := openSnapshotSessions(gctx, o.Source, o.Snapshot, jobs)
	defer closeAll(ctx, sources)
	if err != nil {
		return c.stats, err
	}
	if imported != nil {
		imported()
	}
	parts, err := c.plan(gctx, sources[0], jobs)
	if err != nil {
		return c.stats, err
	}
	c.o.Logger.Debug("copying", "tables", len(o.Tables), "parts", len(parts), "jobs", jobs)
	work := make(chan *part)
	for job, src := range sources {
		g.Go(func() error { return c.worker(gctx, job, src, work) })
	}
	g.Go(func() error {
		defer close(work)
		for _, p := range parts {
			select {
			case work <- p:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	err = g.Wait()
	c.stats.Elapsed = time.Since(c.start)
	return c.stats, err
}

func newCopier(o CopyOptions) *copier {
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	whole := ""
	if o.SplitBytes <= 0 {
		o.SplitBytes, whole = splitFor(o.Source, o.Target, runtime.NumCPU())
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &copier{o: o, start: time.Now(), whole: whole}
}

// plan cuts the tables into parts inside the snapshot, and reports at once
// the tables that have nothing to copy (a partition root without
// partitions).
func (c *copier) plan(ctx context.Context, conn *pgx.Conn, jobs int) ([]*part, error) {
	states := make([]*tableState, len(c.o.Tables))
	for i, t := range c.o.Tables {
		states[i] = &tableState{table: t}
	}
	version, err := catalog.ServerVersion(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	parts, err := planParts(ctx, conn, states, c.o.SplitBytes, jobs, version)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	for _, ts := range states {
		if ts.parts == 0 {
			if err := c.tableDone(ctx, ts); err != nil {
				return nil, err
			}
		}
	}
	return parts, nil
}

// openSnapshotSessions opens n source sessions in REPEATABLE READ READ
// ONLY transactions that share one snapshot. PostgreSQL requires SET
// TRANSACTION SNAPSHOT to be the transaction's first statement, and the
// exporting transaction to be still open while it runs.
func openSnapshotSessions(ctx context.Context, cfg *pgx.ConnConfig, snapshot string, n int) ([]*pgx.Conn, error) {
	var conns []*pgx.Conn
	for i := 0; i < n; i++ {
		conn, err := pgx.ConnectConfig(ctx, copySessionConfig(cfg))
		if err != nil {
			return conns, fmt.Errorf("source %s@%s:%d/%s: connect: %w", cfg.User, cfg.Host, cfg.Port, cfg.Database, err)
		}
		conns = append(conns, conn)
		if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
			return conns, fmt.Errorf("source: begin snapshot transaction: %w", err)
		}
		if snapshot == "" {
			if err := conn.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
				return conns, fmt.Errorf("source: export snapshot: %w", err)
			}
			continue
		}
		if _, err := conn.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quote.Literal(snapshot)); err != nil {
			return conns, fmt.Errorf("source: import snapshot %s (its exporting session must stay open until the copy starts): %w", snapshot, err)
		}
	}
	return conns, nil
}

// copySessionConfig fixes the settings that shape COPY's text format, so
// both sides write and read dates, intervals and floats alike whatever
// their defaults.
func copySessionConfig(cfg *pgx.ConnConfig) *pgx.ConnConfig {
	cfg = cfg.Copy()
	cfg.RuntimeParams["datestyle"] = "ISO"
	cfg.RuntimeParams["intervalstyle"] = "postgres"
	cfg.RuntimeParams["extra_float_digits"] = "3"
	return cfg
}

func closeAll(ctx context.Context, conns []*pgx.Conn) {
	for _, c := range conns {
		c.Close(context.WithoutCancel(ctx))
	}
}

// worker copies parts with one source session (in the snapshot) and its
// own target session.
func (c *copier) worker(ctx context.Context, job int, src *pgx.Conn, work <-chan *part) error {
	tgt, err := connectTargetConfig(ctx, copySessionConfig(c.o.Target))
	if err != nil {
		return err
	}
	defer tgt.Close(context.WithoutCancel(ctx))
	for p := range work {
		rows, bytes, err := c.copyPart(ctx, job, src, tgt, p)
		if err != nil {
			return fmt.Errorf("copy table %s%s: %w", p.table.table.Key(), partSuffix(p), err)
		}
		if err := c.partDone(ctx, p, rows, bytes); err != nil {
			return err
		}
	}
	return nil
}

func partSuffix(p *part) string {
	if p.label == "" {
		return ""
	}
	return " (" + p.label + ")"
}

// partDone adds a committed part to its table, and reports the table when
// it was the last one.
func (c *copier) partDone(ctx context.Context, p *part, rows, bytes int64) error {
	c.mu.Lock()
	ts := p.table
	ts.parts--
	ts.rows += rows
	ts.bytes += bytes
	c.stats.Parts++
	c.stats.Rows += rows
	c.stats.Bytes += bytes
	last := ts.parts == 0
	c.mu.Unlock()
	if !last {
		return nil
	}
	return c.tableDone(ctx, ts)
}

func (c *copier) tableDone(ctx context.Context, ts *tableState) error {
	c.mu.Lock()
	c.stats.Tables++
	c.mu.Unlock()
	c.o.Logger.Debug("table copied", "table", ts.table.Key(), "rows", ts.rows, "bytes", ts.bytes)
	if c.o.TableDone == nil {
		return nil
	}
	c.doneMu.Lock()
	defer c.doneMu.Unlock()
	if err := c.o.TableDone(ctx, ts.table, ts.rows, ts.bytes); err != nil {
		return fmt.Errorf("table %s copied, but recording it failed: %w", ts.table.Key(), err)
	}
	return nil
}
