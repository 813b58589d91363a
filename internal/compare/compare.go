// Package compare checks, row by row and exactly, that the tables of two
// databases hold the same data. It is meant for tests and the demo: it reads
// every row of both sides, so it is slow on big databases but leaves no room
// for doubt. (The validate package is the smarter, sampling comparison.)
package compare

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// maxExamples bounds Diff.Examples so that a table that differs entirely
// still gives a short report.
const maxExamples = 10

// Diff is how one table differs between source and target.
type Diff struct {
	Table     string // schema.table, unquoted
	Missing   int    // rows of the source the target lacks
	Extra     int    // rows of the target the source lacks
	Different int    // rows with the same key and other values
	// Examples holds up to 10 short descriptions of differences.
	Examples []string
}

// Result is the outcome of a comparison.
type Result struct {
	Tables     int   // tables compared (present on both sides)
	Rows       int64 // source rows read
	Diffs      []Diff
	OnlySource []string // tables found only on the source
	OnlyTarget []string // tables found only on the target
	// Counts holds the source row count of every compared table, for
	// per-table reports.
	Counts map[string]int64
}

// Equal reports whether both sides hold the same tables with the same rows.
func (r Result) Equal() bool {
	return len(r.Diffs) == 0 && len(r.OnlySource) == 0 && len(r.OnlyTarget) == 0
}

// String summarizes the result in a few lines.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d tables, %d rows compared", r.Tables, r.Rows)
	if len(r.OnlySource) > 0 {
		fmt.Fprintf(&b, "\nonly on the source: %s", strings.Join(r.OnlySource, ", "))
	}
	if len(r.OnlyTarget) > 0 {
		fmt.Fprintf(&b, "\nonly on the target: %s", strings.Join(r.OnlyTarget, ", "))
	}
	for _, d := range r.Diffs {
		fmt.Fprintf(&b, "\n%s: %d missing, %d extra, %d different", d.Table, d.Missing, d.Extra, d.Different)
		for _, e := range d.Examples {
			fmt.Fprintf(&b, "\n  %s", e)
		}
	}
	return b.String()
}

// Databases compares every user table of src and dst: plain tables and
// partitioned tables as a whole (partitions are read through their root),
// outside pg_catalog, information_schema and the pglink schema.
func Databases(ctx context.Context, src, dst *pgx.Conn) (Result, error) {
	return run(ctx, src, dst, nil)
}

// Tables compares the named tables ("schema.table", unquoted; the schema
// ends at the first dot). A table missing on one side is reported in
// OnlySource or OnlyTarget.
func Tables(ctx context.Context, src, dst *pgx.Conn, tables []string) (Result, error) {
	if tables == nil {
		tables = []string{}
	}
	return run(ctx, src, dst, tables)
}

// run holds one REPEATABLE READ transaction per side for the whole
// comparison, so each side is read as of a single snapshot.
func run(ctx context.Context, src, dst *pgx.Conn, only []string) (res Result, err error) {
	srcTx, err := beginSnapshot(ctx, src, "source")
	if err != nil {
		return Result{}, err
	}
	defer srcTx.Rollback(context.WithoutCancel(ctx))
	dstTx, err := beginSnapshot(ctx, dst, "target")
	if err != nil {
		return Result{}, err
	}
	defer dstTx.Rollback(context.WithoutCancel(ctx))

	srcTables, err := listTables(ctx, srcTx, only)
	if err != nil {
		return Result{}, fmt.Errorf("list source tables: %w", err)
	}
	dstTables, err := listTables(ctx, dstTx, only)
	if err != nil {
		return Result{}, fmt.Errorf("list target tables: %w", err)
	}
	for _, name := range only {
		_, inSrc := srcTables[name]
		if _, inDst := dstTables[name]; !inSrc && !inDst {
			return Result{}, fmt.Errorf("table %s: found on neither side", name)
		}
	}
	res.Counts = map[string]int64{}
	for _, name := range sortedKeys(srcTables) {
		dt, ok := dstTables[name]
		if !ok {
			res.OnlySource = append(res.OnlySource, name)
			continue
		}
		d, rows, err := compareTable(ctx, srcTx, dstTx, srcTables[name], dt)
		if err != nil {
			return Result{}, fmt.Errorf("compare table %s: %w", name, err)
		}
		res.Tables++
		res.Rows += rows
		res.Counts[name] = rows
		if d.Missing+d.Extra+d.Different > 0 || len(d.Examples) > 0 {
			res.Diffs = append(res.Diffs, d)
		}
	}
	for _, name := range sortedKeys(dstTables) {
		if _, ok := srcTables[name]; !ok {
			res.OnlyTarget = append(res.OnlyTarget, name)
		}
	}
	return res, nil
}

// beginSnapshot opens a read-only REPEATABLE READ transaction and fixes the
// settings that shape the text output of values (time zone, date and
// interval style, float digits, bytea format, currency, and the search path
// that decides how regclass and regtype values name their object), so that
// equal values print equally even when the two servers are configured differently.
func beginSnapshot(ctx context.Context, conn *pgx.Conn, side string) (pgx.Tx, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin %s snapshot: %w", side, err)
	}
	const settings = `SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true),
		set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '1', true),
		set_config('bytea_output', 'hex', true), set_config('lc_monetary', 'C', true),
		set_config('search_path', 'pg_catalog', true)`
	if _, err := tx.Exec(ctx, settings); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("set output settings on the %s: %w", side, err)
	}
	return tx, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
