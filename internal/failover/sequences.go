package failover

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/quote"
)

// setSequencesSQL sets each sequence named in $1 (schema.name, quoted)
// that exists on the target to the value in $2 with is_called $3.
const setSequencesSQL = `SELECT s.name, setval(to_regclass(s.name), s.value, s.called)
FROM unnest($1::text[], $2::bigint[], $3::bool[]) AS s(name, value, called)
WHERE to_regclass(s.name) IS NOT NULL`

func sequencesStep(ctx context.Context, x *execution) (string, error) {
	seqs, err := catalog.Sequences(ctx, x.src)
	if err != nil {
		return "", fmt.Errorf("source: %w", err)
	}
	if len(seqs) == 0 {
		return "the source has no sequences", nil
	}
	names := make([]string, len(seqs))
	values := make([]int64, len(seqs))
	called := make([]bool, len(seqs))
	for i, s := range seqs {
		names[i], values[i], called[i] = s.QualifiedName(), s.LastValue, s.IsCalled
	}
	set, err := setSequences(ctx, x.ctl.Conn(), names, values, called)
	if err != nil {
		return "", err
	}
	after, err := catalog.Sequences(ctx, x.ctl.Conn())
	if err != nil {
		return "", fmt.Errorf("target: read the sequences back: %w", err)
	}
	onTarget := map[string]catalog.Sequence{}
	for _, s := range after {
		onTarget[s.Key()] = s
	}
	var missing []string
	for _, s := range seqs {
		t, ok := onTarget[s.Key()]
		if !ok {
			missing = append(missing, s.Key())
			continue
		}
		if t.LastValue != s.LastValue || t.IsCalled != s.IsCalled {
			return "", fmt.Errorf("target: sequence %s reads %d after it was set to %d", s.Key(), t.LastValue, s.LastValue)
		}
	}
	detail := fmt.Sprintf("%d sequences set to the source's values", set)
	if len(missing) > 0 {
		x.res.note("sequences on the source only (their tables are not in the link): %s", strings.Join(missing, ", "))
		detail += fmt.Sprintf("; %d on the source only", len(missing))
	}
	return detail, nil
}

func setSequences(ctx context.Context, conn *pgx.Conn, names []string, values []int64, called []bool) (int, error) {
	rows, err := conn.Query(ctx, setSequencesSQL, names, values, called)
	if err != nil {
		return 0, fmt.Errorf("target: set sequences: %w", err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("target: set sequences: %w", err)
	}
	return n, nil
}

// ownedSequencesSQL lists the target's sequences with the column that owns
// each (serial or identity), and the column's maximum. A sequence owned by
// no column has no maximum.
const ownedSequencesSQL = `SELECT format('%I.%I', sn.nspname, s.relname), seq.seqincrement,
	tc.oid::regclass::text, a.attname
FROM pg_class s
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_sequence seq ON seq.seqrelid = s.oid
LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
	AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
LEFT JOIN pg_class tc ON tc.oid = d.refobjid
LEFT JOIN pg_attribute a ON a.attrelid = tc.oid AND a.attnum = d.refobjsubid
WHERE s.relkind = 'S' AND sn.nspname !~ '^pg_' AND sn.nspname NOT IN ('information_schema', 'pglink')
ORDER BY 1`

// sequencesFromMaxima sets each of the target's sequences past the largest
// value its column holds, plus margin: without the source, the target's
// rows are the best knowledge of what the sequence handed out.
func sequencesFromMaxima(ctx context.Context, x *execution) (string, error) {
	conn := x.ctl.Conn()
	type owned struct {
		seq, table, column string
		incr               int64
	}
	rows, err := conn.Query(ctx, ownedSequencesSQL)
	if err != nil {
		return "", fmt.Errorf("target: list sequences: %w", err)
	}
	var seqs []owned
	for rows.Next() {
		var o owned
		var table, column *string
		if err := rows.Scan(&o.seq, &o.incr, &table, &column); err != nil {
			return "", fmt.Errorf("target: list sequences: %w", err)
		}
		if table != nil && column != nil {
			o.table, o.column = *table, *column
		}
		seqs = append(seqs, o)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("target: list sequences: %w", err)
	}
	var unowned, descending []string
	set := 0
	for _, s := range seqs {
		if s.incr < 0 {
			descending = append(descending, s.seq)
			continue
		}
		q := fmt.Sprintf(`SELECT setval(%s::regclass, greatest((SELECT last_value FROM %s), coalesce((SELECT max(%s) FROM %s), 0)) + $1)`,
			quote.Literal(s.seq), s.seq, pgx.Identifier{s.column}.Sanitize(), s.table)
		if s.table == "" {
			unowned = append(unowned, s.seq)
			q = fmt.Sprintf(`SELECT setval(%s::regclass, (SELECT last_value FROM %s) + $1)`, quote.Literal(s.seq), s.seq)
		}
		if _, err := conn.Exec(ctx, q, x.opts.SequenceMargin); err != nil {
			return "", fmt.Errorf("target: set sequence %s: %w", s.seq, err)
		}
		set++
	}
	x.res.note("sequences were set from the target's table maxima plus a margin of %d, as the source could not be asked; values the source handed out for lost transactions may differ", x.opts.SequenceMargin)
	if len(unowned) > 0 {
		x.res.note("sequences owned by no column were moved forward by the margin only; check them: %s", strings.Join(unowned, ", "))
	}
	if len(descending) > 0 {
		x.res.note("descending sequences were left alone; set them by hand: %s", strings.Join(descending, ", "))
	}
	return fmt.Sprintf("%d sequences set past their columns' maxima + %d", set, x.opts.SequenceMargin), nil
}
