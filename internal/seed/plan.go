package seed

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/quote"
)

// part is one COPY: a whole table, a whole partition, or a range of one.
type part struct {
	table    *tableState
	rel      string // quoted source relation: the table, or a leaf partition of it
	relSize  int64
	where    string // range predicate; empty for the whole relation
	label    string // for progress: "" for a whole table, else the partition and range
	estBytes int64
	// alone: the part is the whole of an ordinary table, so its copy may
	// empty the table first and load it frozen (see copyIn).
	alone bool
}

// unit is a relation that holds rows: an ordinary table or a leaf.
type unit struct {
	rel, name string
	size      int64
}

func units(t catalog.Table) []unit {
	if !t.Partitioned {
		return []unit{{rel: t.QualifiedName(), size: t.SizeBytes}}
	}
	var out []unit
	for _, p := range t.Leaves() {
		out = append(out, unit{rel: p.QualifiedName(), name: p.Key(), size: p.SizeBytes})
	}
	return out
}

// splitCount is how many parts a relation of size bytes is cut into.
func splitCount(size, splitBytes int64) int {
	if splitBytes <= 0 || size <= splitBytes {
		return 1
	}
	return int(min((size+splitBytes-1)/splitBytes, 10000))
}

// balancedCount rounds the part count of a relation that is split up to a
// multiple of jobs, so the jobs that copy it finish together: a table cut
// in 3 for 2 jobs leaves one job idle while the other copies the third
// part, a third of the table's copy time.
func balancedCount(n, jobs int) int {
	if n <= 1 || jobs <= 1 {
		return n
	}
	return min((n+jobs-1)/jobs*jobs, 10000)
}

// partCount is how many parts a relation of size bytes is cut into when
// jobs sessions copy.
func partCount(size, splitBytes int64, jobs int) int {
	return balancedCount(splitCount(size, splitBytes), jobs)
}

// estimateParts counts the parts before any range is known, to open no
// more sessions than there is work for.
func estimateParts(tables []catalog.Table, splitBytes int64, jobs int) int {
	n := 0
	for _, t := range tables {
		for _, u := range units(t) {
			n += partCount(u.size, splitBytes, jobs)
		}
	}
	return n
}

// planParts cuts every table into parts, largest first. Ranges are read in
// conn's snapshot transaction. The first and last range of a relation are
// open-ended, so rows outside the bounds seen here are still copied.
func planParts(ctx context.Context, conn *pgx.Conn, states []*tableState, splitBytes int64, jobs, serverVersion int) ([]*part, error) {
	var parts []*part
	for _, ts := range states {
		for _, u := range units(ts.table) {
			preds, err := ranges(ctx, conn, ts.table, u, partCount(u.size, splitBytes, jobs), serverVersion)
			if err != nil {
				return nil, fmt.Errorf("split %s: %w", u.rel, err)
			}
			for i, pred := range preds {
				label := u.name
				if len(preds) > 1 {
					label = strings.TrimSpace(fmt.Sprintf("%s %d/%d", u.name, i+1, len(preds)))
				}
				parts = append(parts, &part{table: ts, rel: u.rel, relSize: u.size, where: pred, label: label,
					estBytes: u.size / int64(len(preds)), alone: !ts.table.Partitioned && len(preds) == 1})
			}
			ts.parts += len(preds)
		}
	}
	sort.SliceStable(parts, func(i, j int) bool { return parts[i].estBytes > parts[j].estBytes })
	return parts, nil
}

// ranges returns n predicates that together cover every row of u. On
// PostgreSQL 14+ they are ranges of ctid blocks, each read with a TID range
// scan: a plain sequential read of its share of the heap, balanced by size
// whatever the key's distribution. PostgreSQL 13 would read the whole table
// for each ctid range, so there the ranges are of the first primary key
// column when it is an integer (an index scan each), and a table without
// one is copied in one part. Blocks first, as a read by the key's index
// costs the source more for the same rows.
func ranges(ctx context.Context, conn *pgx.Conn, t catalog.Table, u unit, n, serverVersion int) ([]string, error) {
	if n <= 1 {
		return []string{""}, nil
	}
	if serverVersion >= 140000 {
		var blocks int64
		err := conn.QueryRow(ctx, fmt.Sprintf("SELECT pg_relation_size('%s') / current_setting('block_size')::int8",
			strings.ReplaceAll(u.rel, "'", "''"))).Scan(&blocks)
		if err != nil {
			return nil, err
		}
		bounds := intBounds(0, blocks, n)
		return boundsPredicates("ctid", bounds, func(v int64) string { return fmt.Sprintf("'(%d,0)'::tid", v) }), nil
	}
	col, ok := integerKey(t)
	if !ok {
		return []string{""}, nil
	}
	var lo, hi *int64
	err := conn.QueryRow(ctx, fmt.Sprintf("SELECT min(%[1]s)::int8, max(%[1]s)::int8 FROM ONLY %[2]s", col, u.rel)).Scan(&lo, &hi)
	if err != nil {
		return nil, err
	}
	if lo == nil {
		return []string{""}, nil
	}
	return boundsPredicates(col, intBounds(*lo, *hi, n), func(v int64) string { return fmt.Sprint(v) }), nil
}

func integerKey(t catalog.Table) (string, bool) {
	if len(t.PrimaryKey) == 0 {
		return "", false
	}
	for _, c := range t.Columns {
		if c.Name == t.PrimaryKey[0] {
			switch c.TypeOID {
			case 20, 21, 23: // int8, int2, int4
				return quote.Ident(c.Name), true
			}
		}
	}
	return "", false
}

// intBounds returns up to n-1 increasing cut points inside [lo, hi]; the
// subtraction is done unsigned so int8 extremes do not overflow.
func intBounds(lo, hi int64, n int) []int64 {
	span := uint64(hi) - uint64(lo)
	step := span/uint64(n) + 1
	var out []int64
	for i := 1; i < n; i++ {
		off := step * uint64(i)
		if off > span || off < step { // past hi, or wrapped
			break
		}
		out = append(out, int64(uint64(lo)+off))
	}
	return out
}

// boundsPredicates turns cut points b1 < b2 < ... into the predicates
// "x < b1", "x >= b1 AND x < b2", ..., "x >= bn".
func boundsPredicates(x string, bounds []int64, lit func(int64) string) []string {
	if len(bounds) == 0 {
		return []string{""}
	}
	preds := []string{fmt.Sprintf("%s < %s", x, lit(bounds[0]))}
	for i := 1; i < len(bounds); i++ {
		preds = append(preds, fmt.Sprintf("%s >= %s AND %s < %s", x, lit(bounds[i-1]), x, lit(bounds[i])))
	}
	return append(preds, fmt.Sprintf("%s >= %s", x, lit(bounds[len(bounds)-1])))
}

// copySQL returns the source and target COPY statements of a part. The
// column lists are explicit (the target's column order may differ) and
// leave out generated columns, which COPY FROM refuses and the target
// computes. A part of a partition goes into the target's root, which
// routes each row, so the target may be partitioned differently.
func copySQL(p *part, text, freeze bool) (source, target string) {
	cols := p.table.table.CopyColumns()
	names := make([]string, len(cols))
	binary := !text
	for i, c := range cols {
		names[i] = quote.Ident(c.Name)
		binary = binary && c.BinaryPortable
	}
	srcFormat := "(FORMAT text)"
	if binary {
		srcFormat = "(FORMAT binary)"
	}
	tgtFormat := srcFormat
	if freeze {
		tgtFormat = strings.TrimSuffix(srcFormat, ")") + ", FREEZE)"
	}
	list := strings.Join(names, ", ")
	paren := "" // a table without columns (legal in PostgreSQL) has no column list
	if list != "" {
		paren = " (" + list + ")"
	}
	if p.where == "" {
		source = fmt.Sprintf("COPY %s%s TO STDOUT %s", p.rel, paren, srcFormat)
	} else {
		source = fmt.Sprintf("COPY (SELECT %s FROM ONLY %s WHERE %s) TO STDOUT %s", list, p.rel, p.where, srcFormat)
	}
	target = fmt.Sprintf("COPY %s%s FROM STDIN %s", p.table.table.QualifiedName(), paren, tgtFormat)
	return source, target
}
