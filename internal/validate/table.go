package validate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/quote"
)

// Methods of comparison, as TableResult.Method names them.
const (
	MethodChunks   = "chunks by key"
	MethodMultiset = "multiset"
	MethodCount    = "count"
)

// bucket is one side's summary of the rows of a chunk or a hash bucket.
type bucket struct {
	rows   int64
	h1, h2 string // sums of two independent 64-bit row hashes, as numeric text
}

// tableKey is the key rows are compared by: the primary key, else the
// columns of the replica identity index; nil for a table without one.
func tableKey(t catalog.Table) []string {
	if len(t.PrimaryKey) > 0 {
		return t.PrimaryKey
	}
	return t.IdentityColumns
}

// tableName names a table in the report and in errors: quoted only where
// it needs quotes, so public.orders reads as it is and "Mixed Case"."t"
// cannot be misread.
func tableName(t catalog.Table) string { return quote.Name(t.Schema, t.Name) }

// wrapTable names the table in an error.
func wrapTable(t catalog.Table, err error) error {
	return fmt.Errorf("validate table %s: %w", tableName(t), err)
}

// compareTable compares a whole table in one task: row counts only (asked
// for, or a table without columns to compare), or a table without a key as
// a multiset.
func compareTable(ctx context.Context, s *sides, t catalog.Table, cols []string, o Options) (TableResult, error) {
	res := TableResult{Table: tableName(t)}
	if o.Quick || len(cols) == 0 {
		res.Method = MethodCount
		return res, countRows(ctx, s, t, &res)
	}
	return res, compareMultiset(ctx, s, t, cols, o, &res)
}

func countRows(ctx context.Context, s *sides, t catalog.Table, res *TableResult) error {
	return both(ctx, s, func(ctx context.Context, side string, conn *pgx.Conn) error {
		n := &res.SourceRows
		if side == "target" {
			n = &res.TargetRows
		}
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+t.QualifiedName()).Scan(n); err != nil {
			return fmt.Errorf("%s: count rows: %w", side, err)
		}
		return nil
	})
}

// compareChunkGroup compares some chunks of a table with a key: both
// servers hash each chunk in one round trip, and only the chunks whose
// hashes differ are read back, as key and row hash, to name the differing
// rows.
func compareChunkGroup(ctx context.Context, s *sides, k keyed, chunks []chunk, o Options) (TableResult, error) {
	res := TableResult{Method: MethodChunks, Chunks: len(chunks)}
	var src, tgt []bucket
	err := both(ctx, s, func(ctx context.Context, side string, conn *pgx.Conn) error {
		b, err := k.summarize(ctx, conn, chunks)
		if err != nil {
			return fmt.Errorf("%s: %w", side, err)
		}
		if side == "source" {
			src = b
		} else {
			tgt = b
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	n := &namer{max: o.MaxRows, res: &res}
	for i, c := range chunks {
		res.SourceRows += src[i].rows
		res.TargetRows += tgt[i].rows
		if src[i] == tgt[i] {
			continue
		}
		res.ChunksDiffering++
		if err := n.keyedChunk(ctx, s, k, c, src[i], tgt[i]); err != nil {
			return res, err
		}
	}
	return res, nil
}

// namer counts the differences of a table and lists the first of them.
type namer struct {
	max, listed int
	res         *TableResult
}

func (n *namer) note(list *[]string, count *int64, key string, times int64) {
	*count += times
	if n.listed < n.max {
		*list = append(*list, shorten(key))
		n.listed++
	}
}

// keyedChunk names the differences of one chunk. A chunk empty on one side
// is all missing (or all extra) and is read back only as far as the list
// of keys needs.
func (n *namer) keyedChunk(ctx context.Context, s *sides, k keyed, c chunk, src, tgt bucket) error {
	res := n.res
	if src.rows == 0 || tgt.rows == 0 {
		side, conn, list, count := "source", s.src, &res.Missing, &res.MissingCount
		if src.rows == 0 {
			side, conn, list, count = "target", s.tgt, &res.Extra, &res.ExtraCount
		}
		*count += max(src.rows, tgt.rows)
		if n.listed >= n.max {
			return nil
		}
		rows, err := k.readChunk(ctx, conn, c, n.max-n.listed)
		if err != nil {
			return fmt.Errorf("%s: %w", side, err)
		}
		res.RowsFetched += int64(len(rows))
		for _, r := range rows {
			n.note(list, new(int64), r.key, 1)
		}
		return nil
	}
	var srcRows, tgtRows []keyedRow
	err := both(ctx, s, func(ctx context.Context, side string, conn *pgx.Conn) error {
		rows, err := k.readChunk(ctx, conn, c, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", side, err)
		}
		if side == "source" {
			srcRows = rows
		} else {
			tgtRows = rows
		}
		return nil
	})
	if err != nil {
		return err
	}
	res.RowsFetched += int64(len(srcRows) + len(tgtRows))
	onTarget := make(map[string]string, len(tgtRows))
	for _, r := range tgtRows {
		onTarget[r.key] = r.hash
	}
	for _, r := range srcRows {
		h, ok := onTarget[r.key]
		switch {
		case !ok:
			n.note(&res.Missing, &res.MissingCount, r.key, 1)
		case h != r.hash:
			n.note(&res.Different, &res.DifferentCount, r.key, 1)
		}
		delete(onTarget, r.key)
	}
	for _, r := range tgtRows {
		if _, ok := onTarget[r.key]; ok {
			n.note(&res.Extra, &res.ExtraCount, r.key, 1)
		}
	}
	return nil
}

func shorten(s string) string {
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}
