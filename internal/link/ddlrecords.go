package link

import (
	"fmt"
	"strings"

	"github.com/pglink/pglink/internal/apply"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/quote"
)

// The link's records on the target name its tables (pglink.tables, and
// the --tables patterns in pglink.links) and hold the target's oids of the
// tables and partitions it guards (pglink.guards). A carried schema change
// that renames, moves or drops one of them updates those records in the
// same target transaction, so they never name a table that is gone: the
// statement before the change notes the target's oid of each recorded
// table, the one after it compares with the catalog.

// noteTablesSQL notes in the transaction the target's oid of each of the
// link's recorded tables ($1 is the link).
const noteTablesSQL = `SELECT pg_catalog.set_config('pglink.ddl_tables', coalesce((SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
	'rel', pg_catalog.to_regclass(pg_catalog.format('%I.%I', table_schema, table_name))::oid, 'nsp', table_schema, 'name', table_name))::text
	FROM pglink.tables WHERE link = $1), '[]'), true)`

// followTablesSQL updates the link's records after a schema change: a
// noted table now under another name or schema is recorded by it (and an
// exact --tables pattern with it), one that is gone is forgotten, and so is
// every guarded relation the target no longer has.
func followTablesSQL(link string) string {
	lit := quote.Literal(link)
	return `DO $f$ DECLARE r record; BEGIN
	FOR r IN SELECT b.nsp, b.name, n.nspname AS new_nsp, c.relname AS new_name
		FROM pg_catalog.json_to_recordset(pg_catalog.current_setting('pglink.ddl_tables')::json) AS b(rel oid, nsp text, name text)
		LEFT JOIN pg_catalog.pg_class c ON c.oid = b.rel LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE b.rel IS NOT NULL
	LOOP
		IF r.new_name IS NULL THEN
			DELETE FROM pglink.tables WHERE link = ` + lit + ` AND table_schema = r.nsp AND table_name = r.name;
		ELSIF r.new_nsp OPERATOR(pg_catalog.<>) r.nsp OR r.new_name OPERATOR(pg_catalog.<>) r.name THEN
			UPDATE pglink.tables SET table_schema = r.new_nsp, table_name = r.new_name
				WHERE link = ` + lit + ` AND table_schema = r.nsp AND table_name = r.name;
			UPDATE pglink.links SET tables_include = pg_catalog.array_append(pg_catalog.array_remove(pg_catalog.array_remove(tables_include,
				r.nsp OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) r.name), r.new_nsp OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) r.new_name),
				r.new_nsp OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) r.new_name)
				WHERE name = ` + lit + ` AND tables_include OPERATOR(pg_catalog.<>) '{}';
		END IF;
	END LOOP;
	DELETE FROM pglink.guards g WHERE g.link = ` + lit + ` AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = g.rel);
END $f$`
}

// followTables wraps a carried schema change's statements with those that
// keep the link's records true (see noteTablesSQL).
func (d *ddlCarrier) followTables(change []apply.Statement) []apply.Statement {
	out := make([]apply.Statement, 0, len(change)+2)
	out = append(out, apply.Statement{SQL: noteTablesSQL, Args: []string{d.link}, What: "note the link's tables before the schema change"})
	out = append(out, change...)
	return append(out, apply.Statement{SQL: followTablesSQL(d.link), What: "update the link's records of its tables after the schema change"})
}

// followInMemory updates the carrier's own maps after a schema change it
// hands to the apply: a dropped table or partition is no longer the
// link's, a new partition of a linked table is, and a renamed or moved
// table is known by its new name. A
// session that fails is started again with maps read afresh.
func (d *ddlCarrier) followInMemory(p ddlPayload) {
	for _, o := range p.Dropped {
		if o.Rel != nil && d.rels[*o.Rel] {
			delete(d.rels, *o.Rel)
			delete(d.roots, *o.Rel)
			delete(d.tops, *o.Rel)
		}
	}
	for _, o := range p.Commands {
		if d.newPartition(o) {
			d.rels[*o.Rel], d.roots[*o.Rel] = true, d.roots[*o.Top]
		}
	}
	for _, o := range p.Commands {
		if o.Rel == nil || !d.tops[*o.Rel] || o.Type != "table" || o.Schema == nil {
			continue
		}
		old, ok := d.roots[*o.Rel]
		name, nok := identityName(o.Identity)
		if !ok || !nok || old == *o.Schema+"."+name {
			continue
		}
		d.schemas[*o.Schema] = true
		for rel, root := range d.roots {
			if root == old {
				d.roots[rel] = *o.Schema + "." + name
			}
		}
	}
}

// identityName returns the last part of a schema-qualified identity as
// pg_event_trigger_ddl_commands gives it (quoted where needed), unquoted.
func identityName(identity string) (string, bool) {
	var parts []string
	var b strings.Builder
	quoted := false
	for i := 0; i < len(identity); i++ {
		ch := identity[i]
		switch {
		case ch == '"' && quoted && i+1 < len(identity) && identity[i+1] == '"':
			b.WriteByte('"')
			i++
		case ch == '"':
			quoted = !quoted
		case ch == '.' && !quoted:
			parts = append(parts, b.String())
			b.Reset()
		default:
			b.WriteByte(ch)
		}
	}
	parts = append(parts, b.String())
	if quoted || len(parts) != 2 {
		return "", false
	}
	return parts[1], true
}

// newPartition tells whether o is a partition, made or attached since the
// carrier read the linked tables, of a linked table: it is the link's, as
// its rows reach the target through its partitioned table.
func (d *ddlCarrier) newPartition(o ddlObject) bool {
	return o.Rel != nil && o.Top != nil && !d.rels[*o.Rel] && d.tops[*o.Top]
}

// replayed says why a signed message of the capture may not be run, or
// "": the capture names in it the transaction that wrote it, so one that
// arrives in another transaction was written again by someone who read it
// (pg_logical_emit_message is open to any role). A message without one
// is an older pglink's, taken only before the position from which this
// link's capture names its transactions.
func (d *ddlCarrier) replayed(c *change.Change, xid *uint32) string {
	switch {
	case xid != nil && *xid != c.XID:
		return fmt.Sprintf("it was written in source transaction %d but arrived in transaction %d: a copy of a captured message written again, not a schema change", *xid, c.XID)
	case xid == nil && d.bound != 0 && c.MessageLSN >= d.bound:
		return "it names no source transaction, though the link's capture names one in every message since " + d.bound.String()
	}
	return ""
}
