package validate

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/quote"
)

// chunksPerBatch is how many chunk summaries go to a server in one round
// trip; progress is reported after each batch. A batch is the unit the
// jobs share: small enough that a table of a few million rows makes many
// more batches than jobs (so the jobs finish together), large enough that
// a round trip costs little next to hashing its rows.
const chunksPerBatch = 20

// keyed holds the SQL pieces that read a table with a key in key ranges
// the same way on both sides.
type keyed struct {
	table    string   // qualified name
	rowText  string   // the row's text form, from the explicit column list
	keyCols  []string // "t.col", quoted, in key order
	keyTypes []string // the key columns' types, for the boundaries' casts
	keyText  string   // the key's text form, as the report names rows
	intKey   bool     // the key is one integer column: chunks by arithmetic
}

// chunk is a key range [lo, hi); a nil bound is open.
type chunk struct {
	lo, hi []string
}

func newKeyed(t catalog.Table, cols, key []string) (keyed, error) {
	types := map[string]string{}
	oids := map[string]uint32{}
	for _, c := range t.Columns {
		types[c.Name] = c.Type
		oids[c.Name] = c.TypeOID
	}
	k := keyed{table: t.QualifiedName(), rowText: rowText(cols)}
	for _, c := range key {
		typ, ok := types[c]
		if !ok {
			return k, fmt.Errorf("key column %s is not among the table's columns", c)
		}
		k.keyCols = append(k.keyCols, "t."+quote.Ident(c))
		k.keyTypes = append(k.keyTypes, typ)
	}
	k.intKey = len(key) == 1 && isIntegerType(oids[key[0]])
	k.keyText = "ROW(" + strings.Join(k.keyCols, ", ") + ")::text"
	return k, nil
}

// rowText is the text form of a row made from an explicit column list, so
// that both sides render the columns in the same order whatever their
// physical order.
func rowText(cols []string) string {
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = "t." + quote.Ident(c)
	}
	return "ROW(" + strings.Join(quoted, ", ") + ")::text"
}

// boundariesSQL reads every n-th key of the source in key order. It scans
// the key only (the primary key's index, usually without the heap), and
// only the boundaries cross the network.
func (k keyed) boundariesSQL() string {
	inner := make([]string, len(k.keyCols))
	outer := make([]string, len(k.keyCols))
	for i, c := range k.keyCols {
		inner[i] = fmt.Sprintf("%s AS k%d", c, i)
		outer[i] = fmt.Sprintf("s.k%d::text", i)
	}
	return fmt.Sprintf(`SELECT %s FROM (SELECT %s, row_number() OVER (ORDER BY %s) AS n FROM %s t) s
		WHERE s.n %% $1 = 0 ORDER BY s.n`,
		strings.Join(outer, ", "), strings.Join(inner, ", "), strings.Join(k.keyCols, ", "), k.table)
}

// where is the predicate of one chunk and its arguments. Bounds travel as
// text and are cast to the key's types on the server, so the comparison is
// the server's own (and can use the key's index).
func (k keyed) where(c chunk) (string, []any) {
	var conds []string
	var args []any
	bound := func(op string, vals []string) {
		params := make([]string, len(vals))
		for i, v := range vals {
			args = append(args, v)
			params[i] = fmt.Sprintf("$%d::text::%s", len(args), k.keyTypes[i])
		}
		if len(vals) == 1 {
			conds = append(conds, fmt.Sprintf("%s %s %s", k.keyCols[0], op, params[0]))
			return
		}
		conds = append(conds, fmt.Sprintf("ROW(%s) %s ROW(%s)", strings.Join(k.keyCols, ", "), op, strings.Join(params, ", ")))
	}
	if c.lo != nil {
		bound(">=", c.lo)
	}
	if c.hi != nil {
		bound("<", c.hi)
	}
	if len(conds) == 0 {
		return "true", nil
	}
	return strings.Join(conds, " AND "), args
}

// summarySQL is the query both sides run per chunk: a row count and two
// sums of independent 64-bit hashes of the rows' text. A sum does not
// depend on the order the rows are read in, so no sort is needed. The row's
// text is computed once, in a subquery that OFFSET 0 keeps the planner from
// flattening (flattened, each hash converts the row to text again).
func (k keyed) summarySQL(where string) string {
	return fmt.Sprintf(`SELECT count(*), COALESCE(sum(hashtextextended(x.r, 1)), 0)::text, COALESCE(sum(hashtextextended(x.r, 2)), 0)::text
		FROM (SELECT %s AS r FROM %s t WHERE %s OFFSET 0) x`, k.rowText, k.table, where)
}

// chunks splits the source's key range into chunks of about n rows.
func (k keyed) chunks(ctx context.Context, src *pgx.Conn, n int) ([]chunk, error) {
	if k.intKey {
		return k.intRangeChunks(ctx, src, n)
	}
	rows, err := src.Query(ctx, k.boundariesSQL(), n)
	if err != nil {
		return nil, fmt.Errorf("source: read chunk boundaries: %w", err)
	}
	var bounds [][]string
	for rows.Next() {
		vals := make([]string, len(k.keyCols))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return nil, fmt.Errorf("source: read chunk boundaries: %w", err)
		}
		bounds = append(bounds, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("source: read chunk boundaries: %w", err)
	}
	out := make([]chunk, 0, len(bounds)+1)
	var lo []string
	for _, b := range bounds {
		out = append(out, chunk{lo: lo, hi: b})
		lo = b
	}
	return append(out, chunk{lo: lo}), nil
}

// summarize runs the chunk summaries in one round trip.
func (k keyed) summarize(ctx context.Context, conn *pgx.Conn, chunks []chunk) ([]bucket, error) {
	out := make([]bucket, len(chunks))
	batch := &pgx.Batch{}
	for i, c := range chunks {
		where, args := k.where(c)
		batch.Queue(k.summarySQL(where), args...).QueryRow(func(row pgx.Row) error {
			b := &out[i]
			return row.Scan(&b.rows, &b.h1, &b.h2)
		})
	}
	if err := conn.SendBatch(ctx, batch).Close(); err != nil {
		return nil, fmt.Errorf("hash chunks: %w", err)
	}
	return out, nil
}

// keyedRow is one row read back: its key and the hash of its text.
type keyedRow struct{ key, hash string }

// readChunk reads a chunk's keys and row hashes, at most limit rows when
// limit > 0.
func (k keyed) readChunk(ctx context.Context, conn *pgx.Conn, c chunk, limit int) ([]keyedRow, error) {
	where, args := k.where(c)
	q := fmt.Sprintf(`SELECT %s, md5(%s) FROM %s t WHERE %s ORDER BY %s`,
		k.keyText, k.rowText, k.table, where, strings.Join(k.keyCols, ", "))
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read rows of a differing chunk: %w", err)
	}
	var out []keyedRow
	var r keyedRow
	_, err = pgx.ForEachRow(rows, []any{&r.key, &r.hash}, func() error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read rows of a differing chunk: %w", err)
	}
	return out, nil
}
