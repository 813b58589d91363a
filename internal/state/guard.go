package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/quote"
	"github.com/pglink/pglink/internal/wait"
)

// The target's guard keeps a linked table for the link alone. Three parts:
//   - a statement trigger pglink_read_only_<link> on every linked table and
//     partition refuses INSERT, UPDATE, DELETE and TRUNCATE;
//   - the event triggers pglink_guard_ddl and pglink_guard_drop refuse
//     schema changes to a guarded table (ALTER, DROP, DISABLE TRIGGER, new
//     indexes, triggers and partitions), and the dropping of a guard trigger;
//   - the database default default_transaction_read_only = on gives every
//     other session a clear error early.
//
// pglink's own sessions run with session_replication_role = replica, where
// neither ordinary nor event triggers fire; only a superuser (or a role
// granted that setting) can set it, and such a role can also disable the
// event triggers: the guard stops mistakes, not a superuser.
//
// pglink.guards records the guarded relations by oid: when a table is
// dropped, its triggers are gone before an event trigger could look.
const guardSchemaSQL = `
CREATE TABLE IF NOT EXISTS pglink.guards (
	link text NOT NULL,
	rel  oid NOT NULL,
	PRIMARY KEY (link, rel)
);
CREATE OR REPLACE FUNCTION pglink.guarded(rel oid) RETURNS boolean LANGUAGE sql STABLE
	SET search_path = pg_catalog AS $f$
	SELECT EXISTS (SELECT 1 FROM pglink.guards g WHERE g.rel = $1)
		OR EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1 AND tgname LIKE 'pglink\_read\_only\_%')
$f$;
CREATE OR REPLACE FUNCTION pglink.refuse_ddl() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog AS $f$
DECLARE c record;
BEGIN
	FOR c IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
		IF c.classid = 'pg_class'::regclass AND (pglink.guarded(c.objid)
				OR pglink.guarded((SELECT indrelid FROM pg_index WHERE indexrelid = c.objid))
				OR EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = c.objid AND pglink.guarded(inhparent)))
			OR c.classid = 'pg_trigger'::regclass AND pglink.guarded((SELECT tgrelid FROM pg_trigger WHERE oid = c.objid)) THEN
			RAISE EXCEPTION '% on % refused: the table is the target of a pglink link, and its schema follows the source until failover', c.command_tag, c.object_identity
				USING ERRCODE = '25006', HINT = 'change the schema on the source; run pglink failover, or pglink drop to end the link';
		END IF;
	END LOOP;
END
$f$;
CREATE OR REPLACE FUNCTION pglink.refuse_drop() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog AS $f$
DECLARE o record;
BEGIN
	FOR o IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
		IF o.object_type = 'trigger' AND o.object_identity LIKE 'pglink\_read\_only\_% on %'
			OR o.classid = 'pg_class'::regclass AND EXISTS (SELECT 1 FROM pglink.guards g WHERE g.rel = o.objid) THEN
			RAISE EXCEPTION 'dropping % % refused: it belongs to a table that is the target of a pglink link', o.object_type, o.object_identity
				USING ERRCODE = '25006', HINT = 'run pglink failover, or pglink drop to end the link';
		END IF;
	END LOOP;
END
$f$;
`

// Names of the event triggers of the DDL guard, one pair per database.
const (
	ddlGuardTrigger  = "pglink_guard_ddl"
	dropGuardTrigger = "pglink_guard_drop"
)

// ddlGuardSQL creates the event triggers when they are missing.
const ddlGuardSQL = `DO $g$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = '` + ddlGuardTrigger + `') THEN
		CREATE EVENT TRIGGER ` + ddlGuardTrigger + ` ON ddl_command_end EXECUTE FUNCTION pglink.refuse_ddl();
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = '` + dropGuardTrigger + `') THEN
		CREATE EVENT TRIGGER ` + dropGuardTrigger + ` ON sql_drop EXECUTE FUNCTION pglink.refuse_drop();
	END IF;
END $g$`

// guardedRelation is a linked table or one of its partitions.
type guardedRelation struct {
	OID     uint32
	Name    string // quoted, schema-qualified
	Guarded bool   // has the link's trigger, enabled, for all four kinds of write
}

// guardedRelationsSQL lists the tables named by $1 (schemas) and $2
// (names) with all their partitions, and whether trigger $3 guards each.
// The trigger's type bits: INSERT 4, DELETE 8, UPDATE 16, TRUNCATE 32.
const guardedRelationsSQL = `WITH t AS (
	SELECT to_regclass(format('%I.%I', s, n)) AS rel FROM unnest($1::text[], $2::text[]) AS u(s, n)
), tree AS (
	SELECT rel FROM t WHERE rel IS NOT NULL
	UNION SELECT p.relid FROM t CROSS JOIN LATERAL pg_partition_tree(t.rel) p WHERE t.rel IS NOT NULL
)
SELECT rel::oid, rel::regclass::text, EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = tree.rel
	AND g.tgname = $3 AND g.tgenabled <> 'D' AND g.tgtype::int & 60 = 60)
FROM tree ORDER BY 2`

// guardedRelations lists the linked tables and their partitions on the
// target, with the state of their guard.
func guardedRelations(ctx context.Context, conn *pgx.Conn, names Names, tables []catalog.Table) ([]guardedRelation, error) {
	schemas, rels := make([]string, len(tables)), make([]string, len(tables))
	for i, t := range tables {
		schemas[i], rels[i] = t.Schema, t.Name
	}
	rows, err := conn.Query(ctx, guardedRelationsSQL, schemas, rels, names.Trigger)
	if err != nil {
		return nil, fmt.Errorf("target: list the linked tables and their partitions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (g guardedRelation, err error) {
		err = row.Scan(&g.OID, &g.Name, &g.Guarded)
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("target: list the linked tables and their partitions: %w", err)
	}
	return out, nil
}

// GuardTables makes the target tables read-only for everyone but pglink
// (see guardSchemaSQL). ddlGuard tells whether the event triggers are in
// place: only a superuser can create them, and the link goes on without.
func GuardTables(ctx context.Context, conn *pgx.Conn, names Names, tables []catalog.Table) (ddlGuard bool, err error) {
	rels, err := guardedRelations(ctx, conn, names, tables)
	if err != nil {
		return false, err
	}
	var b strings.Builder
	oids := make([]uint32, len(rels))
	for i, rel := range rels {
		oids[i] = rel.OID
		if !rel.Guarded {
			fmt.Fprintf(&b, "DROP TRIGGER IF EXISTS %[1]s ON %[2]s; CREATE TRIGGER %[1]s BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %[2]s FOR EACH STATEMENT EXECUTE FUNCTION pglink.refuse_write();\n",
				pgx.Identifier{names.Trigger}.Sanitize(), rel.Name)
		}
	}
	if b.Len() > 0 {
		if _, err := conn.Exec(ctx, b.String()); err != nil {
			return false, fmt.Errorf("target: make the tables read-only: %w", err)
		}
	}
	_, err = conn.Exec(ctx, `WITH gone AS (DELETE FROM pglink.guards WHERE link = $1 AND rel <> ALL($2::oid[]))
		INSERT INTO pglink.guards (link, rel) SELECT $1, unnest($2::oid[]) ON CONFLICT DO NOTHING`, names.Link, oids)
	if err != nil {
		return false, fmt.Errorf("target: record the guarded tables: %w", err)
	}
	db := conn.Config().Database
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s SET default_transaction_read_only = on",
		pgx.Identifier{db}.Sanitize())); err != nil {
		return false, fmt.Errorf("target: make database %s read-only: %w", db, err)
	}
	return guardDDL(ctx, conn)
}

// guardDDL creates the DDL guard's event triggers; ok is false when the
// role may not (only a superuser can create an event trigger).
func guardDDL(ctx context.Context, conn *pgx.Conn) (ok bool, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("target: guard the linked tables' schema: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, ddlGuardSQL); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			return false, nil
		}
		return false, fmt.Errorf("target: guard the linked tables' schema: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("target: guard the linked tables' schema: %w", err)
	}
	return true, nil
}

// UnguardSQL removes link's guard: its triggers, its rows in pglink.guards,
// and the event triggers once no table of any link is guarded. The
// session must run with session_replication_role = replica (the event
// triggers refuse the dropping of a guard otherwise).
func UnguardSQL(link string) string {
	trigger := quote.Literal(NamesFor(link).Trigger)
	return `DO $g$ DECLARE r record; BEGIN
	FOR r IN SELECT tgrelid::regclass AS rel FROM pg_trigger WHERE tgname = ` + trigger + ` ORDER BY tgrelid LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', ` + trigger + `, r.rel);
	END LOOP;
	IF to_regclass('pglink.guards') IS NOT NULL THEN
		EXECUTE 'DELETE FROM pglink.guards WHERE link = $1' USING ` + quote.Literal(link) + `;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname LIKE 'pglink\_read\_only\_%') THEN
		BEGIN
			DROP EVENT TRIGGER IF EXISTS ` + ddlGuardTrigger + `;
			DROP EVENT TRIGGER IF EXISTS ` + dropGuardTrigger + `;
		EXCEPTION WHEN insufficient_privilege THEN
			RAISE WARNING 'the event triggers ` + ddlGuardTrigger + ` and ` + dropGuardTrigger + ` stay: only a superuser can drop them';
		END;
	END IF;
END $g$`
}

// unguardTries bounds the runs of the guard's removal that end in a
// deadlock.
const unguardTries = 5

// UnguardTables removes the link's guard, and the database's read-only
// default when no other link writes into it.
//
// Dropping a table's trigger locks the table exclusively, one table after
// the other in one transaction; a session that locks two of them in the
// other order (the apply, a reader) meets it in a deadlock, and the server
// ends one of the two. When that is the guard's removal, nothing of it
// stays, and it runs again, a few times, after a short pause.
func UnguardTables(ctx context.Context, conn *pgx.Conn, names Names, otherLinks bool) error {
	for try := 1; ; try++ {
		_, err := conn.Exec(ctx, UnguardSQL(names.Link))
		if err == nil {
			break
		}
		var pgErr *pgconn.PgError
		if try >= unguardTries || !errors.As(err, &pgErr) || pgErr.Code != "40P01" {
			return fmt.Errorf("target: remove the read-only guard of link %s: %w", names.Link, err)
		}
		if err := wait.Sleep(ctx, time.Duration(try)*50*time.Millisecond); err != nil {
			return err
		}
	}
	if otherLinks {
		return nil
	}
	db := conn.Config().Database
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RESET default_transaction_read_only",
		pgx.Identifier{db}.Sanitize())); err != nil {
		return fmt.Errorf("target: make database %s writable: %w", db, err)
	}
	return nil
}

// MissingGuards says which parts of the link's guard are missing on the
// target: tables and partitions others can write, and the DDL guard.
func MissingGuards(ctx context.Context, conn *pgx.Conn, names Names, tables []catalog.Table) ([]string, error) {
	rels, err := guardedRelations(ctx, conn, names, tables)
	if err != nil {
		return nil, err
	}
	var open []string
	for _, rel := range rels {
		if !rel.Guarded {
			open = append(open, rel.Name)
		}
	}
	var out []string
	if len(open) > 0 {
		out = append(out, fmt.Sprintf("target: the read-only guard (trigger %s) is missing or disabled on %s: other sessions can write there and the target drifts from the source; "+
			"run pglink start --name %s again (it puts the guard back)", names.Trigger, strings.Join(open, ", "), names.Link))
	}
	var events int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_event_trigger WHERE evtname IN ($1, $2) AND evtenabled <> 'D'`,
		ddlGuardTrigger, dropGuardTrigger).Scan(&events)
	if err != nil {
		return nil, fmt.Errorf("target: read the event triggers: %w", err)
	}
	if events < 2 {
		out = append(out, fmt.Sprintf("target: the DDL guard (event triggers %s and %s) is missing or disabled: schema changes to linked tables are not refused; "+
			"run pglink start --name %s again as a superuser of the target (only a superuser can create event triggers)", ddlGuardTrigger, dropGuardTrigger, names.Link))
	}
	return out, nil
}

// GuardExpected tells whether the link's target tables should be guarded
// now: from the seeding's first copy until a failover opens them.
func GuardExpected(row *Link) bool {
	switch row.Phase {
	case PhaseSeeding, PhaseReplicating, PhaseBroken:
		return row.SeedStep != StepSchema
	}
	return false
}

// GuardWarnings is MissingGuards for a link's recorded tables, its own
// failure a warning too.
func GuardWarnings(ctx context.Context, conn *pgx.Conn, link string, rows []Table) []string {
	out, err := MissingGuards(ctx, conn, NamesFor(link), CatalogTables(rows))
	if err != nil {
		return []string{fmt.Sprintf("target: could not check the read-only guard: %v", err)}
	}
	return out
}
