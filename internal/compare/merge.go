package compare

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// compareTable streams both sides of one table sorted by key and merges
// them. Keys and rows are compared in their text form: the key as the text
// of ROW(key columns), the row as the text of ROW(all columns), both
// ordered with COLLATE "C" so that the server's order is the byte order Go
// compares with, whatever collation either database uses by default.
// Without a primary key the whole row is the key and the sides are compared
// as multisets: duplicates must appear as often on both sides.
func compareTable(ctx context.Context, srcTx, dstTx pgx.Tx, st, dt *table) (Diff, int64, error) {
	d := Diff{Table: st.fullName()}
	columns := commonColumns(st, dt, &d)
	key := st.Key
	for _, k := range key {
		if !slices.Contains(columns, k) {
			key = nil // the key cannot be read on both sides: compare whole rows
		}
	}
	src, err := open(ctx, srcTx, st, columns, key)
	if err != nil {
		return d, 0, fmt.Errorf("read source: %w", err)
	}
	defer src.rows.Close()
	dst, err := open(ctx, dstTx, dt, columns, key)
	if err != nil {
		return d, 0, fmt.Errorf("read target: %w", err)
	}
	defer dst.rows.Close()
	if err := merge(src, dst, &d); err != nil {
		return d, 0, err
	}
	return d, src.count, nil
}

// commonColumns returns the columns both sides hold, in the source's order,
// and notes in d the columns only one side holds.
func commonColumns(st, dt *table, d *Diff) []string {
	var common []string
	for _, c := range st.Columns {
		if slices.Contains(dt.Columns, c) {
			common = append(common, c)
		} else {
			d.example("column %s only on the source", c)
		}
	}
	for _, c := range dt.Columns {
		if !slices.Contains(st.Columns, c) {
			d.example("column %s only on the target", c)
		}
	}
	return common
}

// merge walks both sorted streams and counts what differs.
func merge(src, dst *cursor, d *Diff) error {
	if err := src.next(); err != nil {
		return fmt.Errorf("read source: %w", err)
	}
	if err := dst.next(); err != nil {
		return fmt.Errorf("read target: %w", err)
	}
	for src.ok || dst.ok {
		advanceSrc, advanceDst := true, true
		switch {
		case !dst.ok || (src.ok && src.key < dst.key):
			d.Missing++
			d.example("missing on target: %s", src.key)
			advanceDst = false
		case !src.ok || dst.key < src.key:
			d.Extra++
			d.example("extra on target: %s", dst.key)
			advanceSrc = false
		case src.val != dst.val:
			d.Different++
			d.example("different: source %s, target %s", src.val, dst.val)
		}
		if advanceSrc {
			if err := src.next(); err != nil {
				return fmt.Errorf("read source: %w", err)
			}
		}
		if advanceDst {
			if err := dst.next(); err != nil {
				return fmt.Errorf("read target: %w", err)
			}
		}
	}
	return nil
}

func (d *Diff) example(format string, args ...any) {
	if len(d.Examples) >= maxExamples {
		return
	}
	s := fmt.Sprintf(format, args...)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	d.Examples = append(d.Examples, s)
}

// cursor is one side's sorted stream of rows.
type cursor struct {
	rows     pgx.Rows
	keyed    bool // rows carry a separate key column
	ok       bool // key and val hold the current row
	key, val string
	count    int64
}

// open starts the sorted read of t. A partitioned table is read through its
// root (all partitions); a plain table with ONLY, so rows of inheritance
// children are not counted twice.
func open(ctx context.Context, tx pgx.Tx, t *table, columns, key []string) (*cursor, error) {
	rowExpr := "ROW(" + quoteList(columns) + ")::text"
	from := "ONLY " + t.quoted()
	if t.Partitioned {
		from = t.quoted()
	}
	sql := "SELECT (" + rowExpr + `) COLLATE "C" FROM ` + from + " ORDER BY 1"
	if len(key) > 0 {
		sql = "SELECT (ROW(" + quoteList(key) + `)::text) COLLATE "C", ` + rowExpr + " FROM " + from + " ORDER BY 1"
	}
	rows, err := tx.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, err
	}
	return &cursor{rows: rows, keyed: len(key) > 0}, nil
}

// next reads the next row; every value is text, so the raw bytes are its
// text form.
func (c *cursor) next() error {
	c.ok = c.rows.Next()
	if !c.ok {
		c.rows.Close()
		return c.rows.Err()
	}
	raw := c.rows.RawValues()
	c.key = string(raw[0])
	c.val = c.key
	if c.keyed {
		c.val = string(raw[1])
	}
	c.count++
	return nil
}

func quoteList(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = pgx.Identifier{n}.Sanitize()
	}
	return strings.Join(quoted, ", ")
}
