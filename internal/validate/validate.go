// Package validate proves that the source and the target of a link hold
// the same data, at one consistent point, doing the work where the data is.
//
// A table with a key (primary key, else replica identity index) is cut into
// chunks of about ChunkRows rows by key ranges read from the source (a key
// of one integer column: equal ranges between its min and max; another
// key: every ChunkRows-th key in key order). Both
// servers run the same query per chunk - a row count and two sums of 64-bit
// hashes of the rows' text - and only those summaries cross the network.
// Chunks that differ are read back from both sides as key and row hash and
// merged, naming the keys missing on the target, extra on the target, or
// different. A table without a key is compared as a multiset of rows, by
// hash buckets of the whole row. Key ranges use each server's own ordering
// of the key, so text keys must sort the same on both sides (same
// collation); where they do not, chunks differ and are reported, never
// hidden.
//
// Both sides render values with the same settings (time zone, date, interval
// and float output, bytea, money, search path) so that equal values hash equally even
// when the two servers are configured differently. Rows are rendered from
// an explicit column list in the source's column order, so a different
// physical column order on the target does not matter.
//
// Sequences are compared for information only: while a link replicates,
// the target's sequences are not kept in step (a failover sets them), so a
// sequence whose value differs does not make a Report unequal; a sequence
// that exists on one side only does.
package validate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/pglink/pglink/internal/catalog"
)

// Options say what to compare, and at which snapshots.
type Options struct {
	Source, Target *pgx.ConnConfig
	// SourceSnapshot and TargetSnapshot are exported snapshot names every
	// session imports; the caller keeps the exporting transactions open
	// until Compare returns. Empty: each session reads a snapshot of its
	// own, which is consistent only on databases nobody writes to.
	SourceSnapshot, TargetSnapshot string
	Tables                         []catalog.Table     // as the source has them
	Jobs                           int                 // parallel jobs, one session per side each; default 2
	MaxRows                        int                 // differing keys listed per table; default 20
	Quick                          bool                // row counts only
	ChunkRows                      int                 // rows per chunk (or hash bucket), about; default 10000
	Progress                       func(TableProgress) // may be nil; called by the jobs concurrently
}

// TableProgress reports how one table's comparison advances. Done is set
// once, when the table is finished.
type TableProgress struct {
	Table      string // as the Report names it
	Method     string
	Chunks     int   // chunks (or hash buckets) of the table
	ChunksDone int   // chunks compared so far
	Rows       int64 // source rows compared so far
	Diffs      int64 // differing rows found so far
	Done       bool
}

// Report is the outcome of a comparison. Objects are named as SQL names
// them, each part quoted only where it needs quotes (public.orders,
// "Mixed Case"."my table").
type Report struct {
	Tables     []TableResult    `json:"tables"`
	OnlySource []string         `json:"only_source"` // tables and columns ("table.column") found on the source only
	OnlyTarget []string         `json:"only_target"`
	Different  []string         `json:"different_columns"`  // columns whose type differs
	Sequences  []SequenceResult `json:"sequences"`          // informational: see the package documentation
	Warnings   []string         `json:"warnings,omitempty"` // what is wrong besides the data (a missing read-only guard)
	Elapsed    time.Duration    `json:"-"`
	Seconds    float64          `json:"seconds"` // Elapsed, in seconds
}

// TableResult is one table's comparison.
type TableResult struct {
	Table           string        `json:"table"`
	Method          string        `json:"method"` // MethodChunks, MethodMultiset or MethodCount
	SourceRows      int64         `json:"source_rows"`
	TargetRows      int64         `json:"target_rows"`
	Chunks          int           `json:"chunks"`
	ChunksDiffering int           `json:"chunks_differing"`
	RowsFetched     int64         `json:"rows_fetched"` // rows read back (key and hash) to name the differences
	MissingCount    int64         `json:"missing_count"`
	ExtraCount      int64         `json:"extra_count"`
	DifferentCount  int64         `json:"different_count"`
	Missing         []string      `json:"missing"` // keys (or row hashes) missing on the target
	Extra           []string      `json:"extra"`
	Different       []string      `json:"different"`
	Elapsed         time.Duration `json:"-"`
	Seconds         float64       `json:"seconds"` // Elapsed, in seconds
}

// Differs reports whether the table differs. Chunks whose hashes differ
// count even when no row could be named: a difference is never success.
func (t TableResult) Differs() bool {
	return t.SourceRows != t.TargetRows || t.ChunksDiffering > 0 || t.MissingCount+t.ExtraCount+t.DifferentCount > 0
}

// SequenceResult compares one sequence. While a link replicates, the
// target's sequences are not kept in step (failover sets them), so a
// difference here is information, not a data difference.
type SequenceResult struct {
	Sequence    string `json:"sequence"`
	SourceValue *int64 `json:"source_value"` // the value the next nextval() follows; nil when absent
	TargetValue *int64 `json:"target_value"`
	Note        string `json:"note,omitempty"` // why the values differ, when they do
}

// Equal reports whether both sides hold the same tables, columns and rows.
func (r Report) Equal() bool {
	if len(r.OnlySource) > 0 || len(r.OnlyTarget) > 0 || len(r.Different) > 0 {
		return false
	}
	for _, t := range r.Tables {
		if t.Differs() {
			return false
		}
	}
	return true
}

func (o *Options) defaults() {
	if o.Jobs <= 0 {
		o.Jobs = 2
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 20
	}
	if o.ChunkRows <= 0 {
		o.ChunkRows = 10000
	}
}

// Compare compares the tables on both sides. Each of the Jobs jobs holds
// one read-only session per side at the snapshots; the jobs first read the
// chunk boundaries of the tables with a key from the source, then share the
// chunks of all tables, so one big table keeps every job busy.
func Compare(ctx context.Context, o Options) (Report, error) {
	o.defaults()
	start := time.Now()
	var rep Report
	pool, err := openPool(ctx, o)
	if err != nil {
		return rep, err
	}
	defer func() {
		for _, s := range pool {
			s.close(ctx)
		}
	}()
	cols, err := compareSchema(ctx, pool[0], o, &rep)
	if err != nil {
		return rep, err
	}
	states, tasks, err := plan(ctx, pool, o, cols)
	if err != nil {
		return rep, err
	}
	if rep.Tables, err = run(ctx, pool, o, states, tasks); err != nil {
		return rep, err
	}
	rep.Elapsed = time.Since(start)
	rep.Seconds = rep.Elapsed.Seconds()
	return rep, nil
}

// openPool opens the jobs' sessions, all at once.
func openPool(ctx context.Context, o Options) ([]*sides, error) {
	pool := make([]*sides, o.Jobs)
	g, gctx := errgroup.WithContext(ctx)
	for i := range pool {
		g.Go(func() error {
			s, err := openSides(gctx, o)
			pool[i] = s
			return err
		})
	}
	if err := g.Wait(); err != nil {
		for _, s := range pool {
			if s != nil {
				s.close(ctx)
			}
		}
		return nil, err
	}
	return pool, nil
}

func (o Options) progress(r TableResult, chunksDone int, done bool) {
	if o.Progress == nil {
		return
	}
	o.Progress(TableProgress{Table: r.Table, Method: r.Method, Chunks: r.Chunks, ChunksDone: chunksDone,
		Rows: r.SourceRows, Diffs: r.MissingCount + r.ExtraCount + r.DifferentCount, Done: done})
}

// sides are one job's sessions on the source and the target.
type sides struct {
	src, tgt *pgx.Conn
}

// sessionSettings make both servers render values the same way. The
// fixed search path also makes them name types (format_type, regtype) and
// relations (regclass) alike, whatever search path a database sets.
var sessionSettings = map[string]string{
	"search_path":        catalog.FixedSearchPath,
	"DateStyle":          "ISO",
	"IntervalStyle":      "postgres",
	"TimeZone":           "UTC",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"lc_monetary":        "C",
}

func openSides(ctx context.Context, o Options) (*sides, error) {
	src, err := openSide(ctx, "source", o.Source, o.SourceSnapshot)
	if err != nil {
		return nil, err
	}
	tgt, err := openSide(ctx, "target", o.Target, o.TargetSnapshot)
	if err != nil {
		src.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return &sides{src: src, tgt: tgt}, nil
}

// openSide opens a read-only repeatable-read session at the snapshot.
func openSide(ctx context.Context, side string, cfg *pgx.ConnConfig, snapshot string) (*pgx.Conn, error) {
	cfg = cfg.Copy()
	for k, v := range sessionSettings {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: connect for validation: %w", side, err)
	}
	sql := "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
	if _, err := conn.Exec(ctx, sql); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%s: begin: %w", side, err)
	}
	if snapshot != "" {
		// SET TRANSACTION SNAPSHOT takes a literal only, not a parameter.
		lit := "'" + strings.ReplaceAll(snapshot, "'", "''") + "'"
		if _, err := conn.Exec(ctx, "SET TRANSACTION SNAPSHOT "+lit); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("%s: import snapshot %s: %w", side, snapshot, err)
		}
	}
	return conn, nil
}

func (s *sides) close(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	s.src.Close(ctx)
	s.tgt.Close(ctx)
}

// both runs f on the source and the target at the same time.
func both(ctx context.Context, s *sides, f func(ctx context.Context, side string, conn *pgx.Conn) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return f(gctx, "source", s.src) })
	g.Go(func() error { return f(gctx, "target", s.tgt) })
	return g.Wait()
}
