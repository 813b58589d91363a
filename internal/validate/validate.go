// Package validate proves that the source and the target of a link hold
// the same data, at one consistent point, doing the work where the data is.
//
// Each table is read once on each side. Rows are spread over buckets by a
// hash of their primary key (of the whole row for a table without a key),
// and each server returns per bucket only a row count and two 64-bit sums
// of row hashes. Only those bucket summaries cross the network. Buckets that
// differ are read again, as key and row hash only, and compared row by row to
// name the keys that are missing on the target, extra on the target, or
// different. A table without a key is compared as a multiset of row hashes.
//
// Both sides render values with the same settings (time zone, date, interval
// and float output, bytea, money) so that equal values hash equally even
// when the two servers are configured differently.
package validate

import (
	"context"
	"fmt"
	"sync"
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
	// until Compare returns. Empty: each session reads its own snapshot.
	SourceSnapshot, TargetSnapshot string
	Tables                         []catalog.Table // as the source has them
	Jobs                           int             // tables compared at once; default 2
	MaxRows                        int             // differing keys listed per table; default 20
	Quick                          bool            // row counts only
	ChunkRows                      int             // rows per bucket, about; default 10000
	Progress                       func(TableProgress)
}

// TableProgress reports one table's comparison.
type TableProgress struct {
	Table string
	Done  bool
	Rows  int64
	Diffs int64
}

// Report is the outcome of a comparison.
type Report struct {
	Tables     []TableResult    `json:"tables"`
	OnlySource []string         `json:"only_source"` // tables and columns ("table.column") found on the source only
	OnlyTarget []string         `json:"only_target"`
	Different  []string         `json:"different_columns"` // columns whose type differs
	Sequences  []SequenceResult `json:"sequences"`
	Seconds    float64          `json:"seconds"`
}

// TableResult is one table's comparison.
type TableResult struct {
	Table           string   `json:"table"`
	Method          string   `json:"method"` // "buckets by key", "multiset", "count"
	SourceRows      int64    `json:"source_rows"`
	TargetRows      int64    `json:"target_rows"`
	Chunks          int      `json:"chunks"`
	ChunksDiffering int      `json:"chunks_differing"`
	RowsFetched     int64    `json:"rows_fetched"` // rows read back to name the differences
	MissingCount    int64    `json:"missing_count"`
	ExtraCount      int64    `json:"extra_count"`
	DifferentCount  int64    `json:"different_count"`
	Missing         []string `json:"missing"` // keys (or row hashes) missing on the target
	Extra           []string `json:"extra"`
	Different       []string `json:"different"`
	Seconds         float64  `json:"seconds"`
}

// Differs reports whether the table differs.
func (t TableResult) Differs() bool {
	return t.SourceRows != t.TargetRows || t.ChunksDiffering > 0 || t.MissingCount+t.ExtraCount+t.DifferentCount > 0
}

// SequenceResult compares one sequence. While a link replicates, the
// target's sequences are not kept in step (failover sets them), so a
// difference here is information, not a data difference.
type SequenceResult struct {
	Sequence    string `json:"sequence"`
	SourceValue *int64 `json:"source_value"`
	TargetValue *int64 `json:"target_value"`
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

// Compare compares the tables on both sides.
func Compare(ctx context.Context, o Options) (Report, error) {
	o.defaults()
	start := time.Now()
	var rep Report
	cols, err := compareSchema(ctx, o, &rep)
	if err != nil {
		return rep, err
	}
	results := make([]TableResult, len(o.Tables))
	work := make(chan int)
	g, gctx := errgroup.WithContext(ctx)
	var mu sync.Mutex
	for range min(o.Jobs, max(len(o.Tables), 1)) {
		g.Go(func() error {
			sides, err := openSides(gctx, o)
			if err != nil {
				return err
			}
			defer sides.close(gctx)
			for i := range work {
				t := o.Tables[i]
				if len(cols[t.Key()]) == 0 {
					continue // not on the target: reported by compareSchema
				}
				res, err := compareTable(gctx, sides, t, cols[t.Key()], o)
				if err != nil {
					return err
				}
				mu.Lock()
				results[i] = res
				mu.Unlock()
				if o.Progress != nil {
					o.Progress(TableProgress{Table: res.Table, Done: true, Rows: res.SourceRows,
						Diffs: res.MissingCount + res.ExtraCount + res.DifferentCount})
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(work)
		for i := range o.Tables {
			select {
			case work <- i:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return rep, err
	}
	for _, r := range results {
		if r.Table != "" {
			rep.Tables = append(rep.Tables, r)
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// sides are one job's sessions on the source and the target.
type sides struct {
	src, tgt *pgx.Conn
}

// sessionSettings make both servers render values the same way.
var sessionSettings = map[string]string{
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
		if _, err := conn.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snapshot+"'"); err != nil {
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
