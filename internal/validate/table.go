package validate

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/change"
)

// bucket is one side's summary of the rows in a bucket.
type bucket struct {
	rows   int64
	h1, h2 string // sums of two independent 64-bit row hashes, as numeric text
}

// tableQuery holds the SQL pieces that read one table the same way on
// both sides.
type tableQuery struct {
	from    string // FROM clause with the row's text as x.r and its key text as x.k
	keyed   bool
	buckets int
}

func newTableQuery(t catalog.Table, cols []string, chunkRows int) tableQuery {
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = "t." + change.QuoteIdent(c)
	}
	key := t.PrimaryKey
	if len(key) == 0 {
		key = t.IdentityColumns
	}
	q := tableQuery{keyed: len(key) > 0}
	keyExpr := "NULL::text"
	if q.keyed {
		kq := make([]string, len(key))
		for i, c := range key {
			kq[i] = "t." + change.QuoteIdent(c)
		}
		keyExpr = "ROW(" + strings.Join(kq, ", ") + ")::text"
	}
	q.from = fmt.Sprintf("FROM %s t, LATERAL (SELECT ROW(%s)::text AS r, %s AS k) x",
		t.QualifiedName(), strings.Join(quoted, ", "), keyExpr)
	est := max(t.EstRows, t.SizeBytes/100, 1)
	q.buckets = int(min(max(est/int64(chunkRows), 1), 100000))
	return q
}

// bucketExpr spreads rows over buckets: by key, or by the whole row for a
// table without a key (so equal rows meet in one bucket).
func (q tableQuery) bucketExpr() string {
	of := "x.r"
	if q.keyed {
		of = "x.k"
	}
	return fmt.Sprintf("((hashtextextended(%s, 0) & 9223372036854775807) %% %d)", of, q.buckets)
}

func (q tableQuery) summarySQL() string {
	return fmt.Sprintf(`SELECT %s AS b, count(*), sum(hashtextextended(x.r, 1))::text, sum(hashtextextended(x.r, 2))::text
		%s GROUP BY 1`, q.bucketExpr(), q.from)
}

// rowsSQL reads the rows of some buckets back: key and row hash for a
// keyed table, row text and count for a table without a key.
func (q tableQuery) rowsSQL() string {
	if q.keyed {
		return fmt.Sprintf(`SELECT x.k, md5(x.r), 1::bigint %s WHERE %s = ANY($1)`, q.from, q.bucketExpr())
	}
	return fmt.Sprintf(`SELECT x.r, md5(x.r), count(*) %s WHERE %s = ANY($1) GROUP BY 1, 2`, q.from, q.bucketExpr())
}

func compareTable(ctx context.Context, s *sides, t catalog.Table, cols []string, o Options) (TableResult, error) {
	start := time.Now()
	res := TableResult{Table: t.Key()}
	var err error
	if o.Quick {
		res.Method = "count"
		err = countRows(ctx, s, t, &res)
	} else {
		err = compareBuckets(ctx, s, t, cols, o, &res)
	}
	if err != nil {
		return res, fmt.Errorf("validate table %s: %w", t.Key(), err)
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
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

func compareBuckets(ctx context.Context, s *sides, t catalog.Table, cols []string, o Options, res *TableResult) error {
	q := newTableQuery(t, cols, o.ChunkRows)
	res.Method, res.Chunks = "buckets by key", q.buckets
	if !q.keyed {
		res.Method = "multiset"
	}
	var src, tgt map[int64]bucket
	err := both(ctx, s, func(ctx context.Context, side string, conn *pgx.Conn) error {
		m, n, err := summarize(ctx, conn, q)
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
	if len(differing) == 0 {
		return nil
	}
	return nameDifferences(ctx, s, q, differing, o.MaxRows, res)
}

func summarize(ctx context.Context, conn *pgx.Conn, q tableQuery) (map[int64]bucket, int64, error) {
	rows, err := conn.Query(ctx, q.summarySQL())
	if err != nil {
		return nil, 0, fmt.Errorf("hash rows: %w", err)
	}
	defer rows.Close()
	out := map[int64]bucket{}
	var total int64
	for rows.Next() {
		var b int64
		var s bucket
		if err := rows.Scan(&b, &s.rows, &s.h1, &s.h2); err != nil {
			return nil, 0, fmt.Errorf("hash rows: %w", err)
		}
		out[b] = s
		total += s.rows
	}
	return out, total, rows.Err()
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

// rowSet maps a row's key (or, without a key, its text) to its hash and
// how often it occurs.
type rowSet map[string]struct {
	hash  string
	count int64
}

// nameDifferences reads the differing buckets back from both sides and
// names what differs.
func nameDifferences(ctx context.Context, s *sides, q tableQuery, buckets []int64, maxRows int, res *TableResult) error {
	var src, tgt rowSet
	err := both(ctx, s, func(ctx context.Context, side string, conn *pgx.Conn) error {
		set, err := readRows(ctx, conn, q, buckets)
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
	res.RowsFetched = int64(len(src) + len(tgt))
	listed := 0
	note := func(list *[]string, count *int64, k string, n int64) {
		*count += n
		if listed < maxRows {
			*list = append(*list, shorten(k))
			listed++
		}
	}
	for _, k := range sortedKeys(src) {
		a, b := src[k], tgt[k]
		switch {
		case b.count == 0:
			note(&res.Missing, &res.MissingCount, k, a.count)
		case a.hash != b.hash:
			note(&res.Different, &res.DifferentCount, k, 1)
		case a.count > b.count:
			note(&res.Missing, &res.MissingCount, k, a.count-b.count)
		case a.count < b.count:
			note(&res.Extra, &res.ExtraCount, k, b.count-a.count)
		}
	}
	for _, k := range sortedKeys(tgt) {
		if _, ok := src[k]; !ok {
			note(&res.Extra, &res.ExtraCount, k, tgt[k].count)
		}
	}
	return nil
}

func readRows(ctx context.Context, conn *pgx.Conn, q tableQuery, buckets []int64) (rowSet, error) {
	rows, err := conn.Query(ctx, q.rowsSQL(), buckets)
	if err != nil {
		return nil, fmt.Errorf("read differing rows: %w", err)
	}
	defer rows.Close()
	out := rowSet{}
	for rows.Next() {
		var k, h string
		var n int64
		if err := rows.Scan(&k, &h, &n); err != nil {
			return nil, fmt.Errorf("read differing rows: %w", err)
		}
		e := out[k]
		e.hash, e.count = h, e.count+n
		out[k] = e
	}
	return out, rows.Err()
}

func sortedKeys(m rowSet) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func shorten(s string) string {
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}
