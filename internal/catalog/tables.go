package catalog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// listTablesSQL selects the tables a link can replicate: ordinary tables
// that are not partitions and partition roots (a publication with
// publish_via_partition_root carries partitions as their root). It leaves
// out system schemas (every pg_* schema is reserved to the system, which
// covers pg_toast and the temporary schemas), information_schema, pglink's
// own schema, temporary tables and tables that belong to an extension
// (CREATE EXTENSION makes them on the target).
const listTablesSQL = `
SELECT c.oid, n.nspname, c.relname, c.relkind = 'p', c.relpersistence = 'u', c.relreplident::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
  AND n.nspname !~ '^pg_' AND n.nspname NOT IN ('information_schema', $1)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY n.nspname, c.relname`

// Tables lists the user tables of the database that f selects, sorted by
// schema and name, with their columns, keys, replica identity, partitions
// and sizes. Unlogged tables are listed (Unlogged set) so callers can refuse
// them with a clear message.
func Tables(ctx context.Context, conn *pgx.Conn, f Filter) ([]Table, error) {
	rows, err := conn.Query(ctx, listTablesSQL, OwnSchema)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var tables []Table
	var ident string
	var t Table
	_, err = pgx.ForEachRow(rows, []any{&t.OID, &t.Schema, &t.Name, &t.Partitioned, &t.Unlogged, &ident},
		func() error {
			if f.Match(t.Schema, t.Name) {
				t.ReplicaIdentity = ident[0]
				tables = append(tables, t)
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	if len(tables) == 0 {
		return nil, nil
	}
	byOID := make(map[uint32]*Table, len(tables))
	oids := make([]uint32, len(tables))
	for i := range tables {
		byOID[tables[i].OID] = &tables[i]
		oids[i] = tables[i].OID
	}
	if err := loadColumns(ctx, conn, oids, byOID); err != nil {
		return nil, err
	}
	if err := loadKeys(ctx, conn, oids, byOID); err != nil {
		return nil, err
	}
	if err := loadTrees(ctx, conn, oids, byOID); err != nil {
		return nil, err
	}
	return tables, nil
}

// loadColumns reads the columns, their types named under FixedSearchPath:
// schema-qualified, the same on every server.
func loadColumns(ctx context.Context, conn *pgx.Conn, oids []uint32, byOID map[uint32]*Table) error {
	err := withFixedSearchPath(ctx, conn, func() error {
		rows, err := conn.Query(ctx, `
			SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid,
			       a.attgenerated <> '', a.attnotnull
			FROM pg_attribute a
			WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
			ORDER BY a.attrelid, a.attnum`, oids)
		if err != nil {
			return err
		}
		var rel uint32
		var c Column
		_, err = pgx.ForEachRow(rows, []any{&rel, &c.Name, &c.Type, &c.TypeOID, &c.Generated, &c.NotNull}, func() error {
			t := byOID[rel]
			t.Columns = append(t.Columns, c)
			return nil
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("list columns: %w", err)
	}
	types := newTypeInfo(conn)
	for _, t := range byOID {
		for i := range t.Columns {
			ok, err := types.binaryPortable(ctx, t.Columns[i].TypeOID, 0)
			if err != nil {
				return fmt.Errorf("column %s.%s: %w", t.Key(), t.Columns[i].Name, err)
			}
			t.Columns[i].BinaryPortable = ok
		}
	}
	return nil
}

// loadKeys reads the primary key and the replica identity index: key
// columns only (indnkeyatts leaves out INCLUDE columns), in index order.
func loadKeys(ctx context.Context, conn *pgx.Conn, oids []uint32, byOID map[uint32]*Table) error {
	rows, err := conn.Query(ctx, `
		SELECT i.indrelid, i.indisprimary, i.indisreplident,
		       ARRAY(SELECT a.attname
		             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		             WHERE k.ord <= i.indnkeyatts ORDER BY k.ord)
		FROM pg_index i
		WHERE i.indrelid = ANY($1::oid[]) AND (i.indisprimary OR i.indisreplident)`, oids)
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	var rel uint32
	var primary, replident bool
	var cols []string
	_, err = pgx.ForEachRow(rows, []any{&rel, &primary, &replident, &cols}, func() error {
		t := byOID[rel]
		if primary {
			t.PrimaryKey = cols
		}
		if replident && t.ReplicaIdentity == 'i' {
			t.IdentityColumns = cols
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	for _, t := range byOID {
		if t.ReplicaIdentity == 'd' && len(t.PrimaryKey) > 0 {
			t.IdentityColumns = t.PrimaryKey
		}
	}
	return nil
}

// loadTrees reads sizes and partitions. pg_partition_tree (PostgreSQL 12+)
// returns a root with every table below it, and nothing for an ordinary
// table, which the outer join then stands in for.
func loadTrees(ctx context.Context, conn *pgx.Conn, oids []uint32, byOID map[uint32]*Table) error {
	rows, err := conn.Query(ctx, `
		SELECT r.oid, COALESCE(pt.level, 0), n.nspname, c.relname, c.relkind = 'r', c.relreplident::text,
		       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
		       pg_total_relation_size(c.oid), c.reltuples::int8
		FROM unnest($1::oid[]) AS r(oid)
		LEFT JOIN LATERAL pg_partition_tree(r.oid) AS pt ON true
		JOIN pg_class c ON c.oid = COALESCE(pt.relid, r.oid)
		JOIN pg_namespace n ON n.oid = c.relnamespace
		ORDER BY r.oid, 2, n.nspname, c.relname`, oids)
	if err != nil {
		return fmt.Errorf("list partitions and sizes: %w", err)
	}
	var root uint32
	var level int
	var ident string
	var hasPK bool
	var p Partition
	_, err = pgx.ForEachRow(rows, []any{&root, &level, &p.Schema, &p.Name, &p.Leaf, &ident, &hasPK, &p.SizeBytes, &p.EstRows},
		func() error {
			t := byOID[root]
			t.SizeBytes += p.SizeBytes
			if level == 0 {
				t.EstRows = p.EstRows
				return nil
			}
			p.ReplicaIdentity = ident[0]
			p.HasIdentity = hasIdentity(p.ReplicaIdentity, hasPK)
			t.Partitions = append(t.Partitions, p)
			return nil
		})
	if err != nil {
		return fmt.Errorf("list partitions and sizes: %w", err)
	}
	for _, t := range byOID {
		if t.Partitioned {
			t.EstRows = leafRows(t.Partitions)
		}
	}
	return nil
}

// leafRows sums reltuples over analyzed leaves; -1 when none was analyzed
// (PostgreSQL 14+ stores -1 for never analyzed, older versions 0).
func leafRows(parts []Partition) int64 {
	var sum int64 = -1
	for _, p := range parts {
		if p.Leaf && p.EstRows >= 0 {
			if sum < 0 {
				sum = 0
			}
			sum += p.EstRows
		}
	}
	return sum
}
