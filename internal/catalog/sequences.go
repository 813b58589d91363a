package catalog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/quote"
)

// Sequence is a sequence's position. Logical replication does not carry
// sequences, so a failover sets them on the target with
// setval(seq, LastValue, IsCalled).
type Sequence struct {
	Schema, Name string
	LastValue    int64
	IsCalled     bool   // false: the next nextval returns LastValue itself
	OwnedBy      string // "schema.table" of the table whose column owns it (serial, identity), or ""
}

// Key returns "schema.name" unquoted.
func (s Sequence) Key() string { return s.Schema + "." + s.Name }

// QualifiedName returns schema.name quoted for SQL.
func (s Sequence) QualifiedName() string {
	return quote.Ident(s.Schema) + "." + quote.Ident(s.Name)
}

// Sequences lists the user sequences (same schemas as Tables, none of an
// extension) with their current positions. The position is read from the
// sequence itself: pg_sequences.last_value is NULL both for a sequence
// never used and for one the user may not read, which a failover must not
// confuse.
func Sequences(ctx context.Context, conn *pgx.Conn) ([]Sequence, error) {
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, c.relname,
		       COALESCE((SELECT tn.nspname || '.' || tc.relname
		                 FROM pg_depend d
		                 JOIN pg_class tc ON tc.oid = d.refobjid
		                 JOIN pg_namespace tn ON tn.oid = tc.relnamespace
		                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
		                   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
		                 LIMIT 1), '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'S' AND c.relpersistence <> 't'
		  AND n.nspname !~ '^pg_' AND n.nspname NOT IN ('information_schema', $1)
		  AND NOT EXISTS (SELECT 1 FROM pg_depend d
		                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
		ORDER BY n.nspname, c.relname`, OwnSchema)
	if err != nil {
		return nil, fmt.Errorf("list sequences: %w", err)
	}
	var seqs []Sequence
	var s Sequence
	_, err = pgx.ForEachRow(rows, []any{&s.Schema, &s.Name, &s.OwnedBy}, func() error {
		seqs = append(seqs, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list sequences: %w", err)
	}
	if len(seqs) == 0 {
		return nil, nil
	}
	batch := &pgx.Batch{}
	for i := range seqs {
		seq := &seqs[i]
		batch.Queue("SELECT last_value, is_called FROM " + seq.QualifiedName()).QueryRow(func(row pgx.Row) error {
			if err := row.Scan(&seq.LastValue, &seq.IsCalled); err != nil {
				return fmt.Errorf("read sequence %s: %w", seq.Key(), err)
			}
			return nil
		})
	}
	if err := conn.SendBatch(ctx, batch).Close(); err != nil {
		return nil, err
	}
	return seqs, nil
}
