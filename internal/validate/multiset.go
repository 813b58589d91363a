package validate

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
)

// multiset holds the SQL that reads a table without a key the same way on
// both sides. Such a table may hold equal rows several times, so it is
// compared as a multiset of rows: rows are spread over buckets by a hash of
// their text (equal rows meet in one bucket), each side returns per bucket
// a count and two sums of row hashes, and the differing buckets are read
// back as row text with counts.
type multiset struct {
	from    string // FROM clause with the row's text as x.r
	buckets int
}

func newMultiset(t catalog.Table, cols []string, chunkRows int) multiset {
	est := max(t.EstRows, t.SizeBytes/100, 1)
	return multiset{
		// OFFSET 0: the row's text is computed once, not once per use.
		from:    fmt.Sprintf("FROM (SELECT %s AS r FROM %s t OFFSET 0) x", rowText(cols), t.QualifiedName()),
		buckets: int(min(max(est/int64(chunkRows), 1), 100000)),
	}
}

func (q multiset) bucketExpr() string {
	return fmt.Sprintf("((hashtextextended(x.r, 0) & 9223372036854775807) %% %d)", q.buckets)
}

func (q multiset) summarySQL() string {
	return fmt.Sprintf(`SELECT %s AS b, count(*), sum(hashtextextended(x.r, 1))::text, sum(hashtextextended(x.r, 2))::text
		%s GROUP BY 1`, q.bucketExpr(), q.from)
}

func (q multiset) rowsSQL() string {
	return fmt.Sprintf(`SELECT x.r, count(*) %s WHERE %s = ANY($1) GROUP BY 1`, q.from, q.bucketExpr())
}

func compareMultiset(ctx context.Context, s *sides, t catalog.Table, cols []string, o Options, res *TableResult) error {
	q := newMultiset(t, cols, o.ChunkRows)
	res.Method, res.Chunks = MethodMultiset, q.buckets
	var src, tgt map[int64]bucket
	err := both(ctx, s, func(ctx context.Context, side string, conn *pgx.Conn) error {
		m, n, err := q.summarize(ctx, conn)
		if err != nil {
			return fmt.Errorf("%s: %w", side, err)
		}
		if side == "source" {
			src, res.SourceRows = m, n
		} else {
			tgt, res.TargetRows = m, n
		}
		return nil
	})
	if err != nil {
		return err
	}
	differing := differingBuckets(src, tgt)
	res.ChunksDiffering = len(differing)
	if len(differing) > 0 {
		err = q.nameDifferences(ctx, s, differing, &namer{max: o.MaxRows, res: res})
	}
	return err
}

func (q multiset) summarize(ctx context.Context, conn *pgx.Conn) (map[int64]bucket, int64, error) {
	rows, err := conn.Query(ctx, q.summarySQL())
	if err != nil {
		return nil, 0, fmt.Errorf("hash rows: %w", err)
	}
	out := map[int64]bucket{}
	var total, b int64
	var s bucket
	_, err = pgx.ForEachRow(rows, []any{&b, &s.rows, &s.h1, &s.h2}, func() error {
		out[b] = s
		total += s.rows
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("hash rows: %w", err)
	}
	return out, total, nil
}

func differingBuckets(src, tgt map[int64]bucket) []int64 {
	var out []int64
	for b, s := range src {
		if t, ok := tgt[b]; !ok || t != s {
			out = append(out, b)
		}
	}
	for b := range tgt {
		if _, ok := src[b]; !ok {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// nameDifferences reads the differing buckets back from both sides and
// names the rows that occur more often on one side.
func (q multiset) nameDifferences(ctx context.Context, s *sides, buckets []int64, n *namer) error {
	var src, tgt map[string]int64
	err := both(ctx, s, func(ctx context.Context, side string, conn *pgx.Conn) error {
		set, err := q.readRows(ctx, conn, buckets)
		if err != nil {
			return fmt.Errorf("%s: %w", side, err)
		}
		if side == "source" {
			src = set
		} else {
			tgt = set
		}
		return nil
	})
	if err != nil {
		return err
	}
	res := n.res
	res.RowsFetched += int64(len(src) + len(tgt))
	for _, r := range sortedKeys(src) {
		if d := src[r] - tgt[r]; d > 0 {
			n.note(&res.Missing, &res.MissingCount, r, d)
		}
	}
	for _, r := range sortedKeys(tgt) {
		if d := tgt[r] - src[r]; d > 0 {
			n.note(&res.Extra, &res.ExtraCount, r, d)
		}
	}
	return nil
}

// readRows returns the rows of some buckets as row text and how often it
// occurs.
func (q multiset) readRows(ctx context.Context, conn *pgx.Conn, buckets []int64) (map[string]int64, error) {
	rows, err := conn.Query(ctx, q.rowsSQL(), buckets)
	if err != nil {
		return nil, fmt.Errorf("read rows of differing buckets: %w", err)
	}
	out := map[string]int64{}
	var r string
	var c int64
	_, err = pgx.ForEachRow(rows, []any{&r, &c}, func() error {
		out[r] += c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read rows of differing buckets: %w", err)
	}
	return out, nil
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
