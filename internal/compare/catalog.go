package compare

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// table is what the comparison needs to know of one table on one side.
type table struct {
	Schema, Name string
	Partitioned  bool     // relkind 'p': read through the root, all partitions
	Columns      []string // in column order, dropped columns left out
	Key          []string // primary key columns in key order; empty without one
}

func (t *table) fullName() string { return t.Schema + "." + t.Name }

func (t *table) quoted() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// tablesSQL lists user tables with their columns and primary key. Partitions
// are left out unless named: a partitioned table is compared as a whole, and
// a partition may live under another name or split on the other side.
// Tables that belong to an extension are left out, as pg_dump does.
const tablesSQL = `
SELECT n.nspname::text, c.relname::text, c.relkind = 'p',
  ARRAY(SELECT a.attname::text FROM pg_attribute a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
  ARRAY(SELECT a.attname::text FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
        WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.ord)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pglink')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
  AND (CASE WHEN $1 THEN (n.nspname, c.relname) IN (SELECT * FROM unnest($2::text[], $3::text[]))
            ELSE NOT c.relispartition END)`

// listTables returns the user tables of one side by "schema.table"; only,
// when not nil, restricts the list to those names.
func listTables(ctx context.Context, tx pgx.Tx, only []string) (map[string]*table, error) {
	var schemas, names []string
	for _, n := range only {
		s, t, ok := strings.Cut(n, ".")
		if !ok {
			return nil, fmt.Errorf("table %q: give it as schema.table", n)
		}
		schemas, names = append(schemas, s), append(names, t)
	}
	rows, err := tx.Query(ctx, tablesSQL, only != nil, schemas, names)
	if err != nil {
		return nil, err
	}
	tables := map[string]*table{}
	for rows.Next() {
		t := &table{}
		if err := rows.Scan(&t.Schema, &t.Name, &t.Partitioned, &t.Columns, &t.Key); err != nil {
			rows.Close()
			return nil, err
		}
		tables[t.fullName()] = t
	}
	return tables, rows.Err()
}
