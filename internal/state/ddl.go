package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/quote"
)

// What a link does with the source's schema changes (pglink start --ddl).
const (
	DDLReplicate = "replicate" // carried to the target at their point of the stream
	DDLStop      = "stop"      // the link holds before each until pglink resume-ddl
	DDLIgnore    = "ignore"    // left out, and said so in status
)

// DDLPrefix marks the logical decoding messages of the source's DDL
// capture.
const DDLPrefix = "pglink_ddl"

// ValidDDLMode checks a --ddl value.
func ValidDDLMode(mode string) error {
	switch mode {
	case DDLReplicate, DDLStop, DDLIgnore:
		return nil
	}
	return fmt.Errorf("invalid --ddl %q: use %s (carry the source's schema changes), %s (hold the link at each until pglink resume-ddl) or %s (leave them out)",
		mode, DDLReplicate, DDLStop, DDLIgnore)
}

// captureNames are the source's objects of a link's DDL capture, all in
// schema pglink (which pg_dump and the table listing leave out).
type captureNames struct {
	endTrigger, dropTrigger string // event triggers
	capture, dropped, emit  string // functions, schema-qualified and quoted
	droppedGUC              string // where sql_drop leaves what it saw for ddl_command_end
}

func captureNamesFor(link string) captureNames {
	return captureNames{
		endTrigger:  "pglink_ddl_" + link,
		dropTrigger: "pglink_ddl_drop_" + link,
		capture:     "pglink." + quote.Ident("ddl_capture_"+link),
		dropped:     "pglink." + quote.Ident("ddl_dropped_"+link),
		emit:        "pglink." + quote.Ident("ddl_emit_"+link),
		droppedGUC:  "pglink.ddl_dropped_" + link,
	}
}

// captureSQL installs the capture. The event trigger functions run as the
// role that changes the schema and never fail its statement: an error is
// a WARNING (a source's migrations must never break because of pglink).
// They hand the search path, the role and the command tag to the signing
// function, SECURITY DEFINER with a fixed search path, which only works
// inside an event trigger (it reads pg_event_trigger_ddl_commands itself),
// only for a role of the session, and signs the message with the link's
// key, readable by its owner only: the target runs what it is sent, so no
// one else may write such a message.
func captureSQL(link, key string) string {
	n := captureNamesFor(link)
	guc := quote.Literal(n.droppedGUC)
	return keySQL(link, key) + "\n" + partitionCaptureSQL(link, NamesFor(link).Publication) + `
CREATE OR REPLACE FUNCTION ` + n.emit + `(search_path text, role text, tag text, seq int, dropped text) RETURNS text
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE cmds jsonb; drops jsonb; payload text; k text;
BEGIN
	IF NOT pg_has_role(session_user, role, 'MEMBER') THEN
		RAISE EXCEPTION 'role % is not one of the session''s', role;
	END IF;
	SELECT coalesce(jsonb_agg(jsonb_build_object('tag', c.command_tag, 'type', c.object_type,
		'schema', c.schema_name, 'identity', c.object_identity,
		'rel', (CASE c.classid
			WHEN 'pg_class'::regclass THEN (SELECT CASE WHEN r.relkind IN ('r', 'p', 'f') THEN r.oid
				WHEN r.relkind IN ('i', 'I') THEN (SELECT indrelid FROM pg_index WHERE indexrelid = r.oid) END
				FROM pg_class r WHERE r.oid = c.objid)
			WHEN 'pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_trigger WHERE oid = c.objid)
			WHEN 'pg_constraint'::regclass THEN (SELECT nullif(conrelid, 0) FROM pg_constraint WHERE oid = c.objid)
			WHEN 'pg_policy'::regclass THEN (SELECT polrelid FROM pg_policy WHERE oid = c.objid)
			END)::bigint,
		'top', (SELECT a.relid FROM pg_partition_ancestors(c.objid) a JOIN pg_class ac ON ac.oid = a.relid
			WHERE c.classid = 'pg_class'::regclass AND a.relid <> c.objid AND NOT ac.relispartition)::bigint)), '[]') INTO cmds
		FROM pg_event_trigger_ddl_commands() c;
	drops := coalesce(nullif(dropped, ''), '[]')::jsonb;
	IF cmds = '[]' AND drops = '[]' THEN
		RETURN NULL;
	END IF;
	payload := jsonb_build_object('query', current_query(), 'search_path', search_path, 'role', role,
		'tag', tag, 'seq', seq, 'at', clock_timestamp(), 'commands', cmds, 'dropped', drops,
		'xid', txid_current() % 4294967296)::text;
	SELECT d.key INTO STRICT k FROM pglink.ddl_keys d WHERE d.link = ` + quote.Literal(link) + `;
	RETURN encode(sha256(convert_to(k || encode(sha256(convert_to(k || payload, 'UTF8')), 'hex'), 'UTF8')), 'hex') || E'\n' || payload;
END
$f$;
REVOKE ALL ON FUNCTION ` + n.emit + `(text, text, text, int, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ` + n.emit + `(text, text, text, int, text) TO PUBLIC;
CREATE OR REPLACE FUNCTION ` + n.capture + `() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE dropped text; seq int; last text; content text;
BEGIN
	-- pglink's own changes of the source (the failover's fence) say so.
	IF pg_catalog.current_setting('pglink.ddl_capture', true) OPERATOR(pg_catalog.=) 'off' THEN
		RETURN;
	END IF;
	BEGIN
	-- Set here, not in the emit function: a function's SET clause undoes
	-- what it sets locally. The same client string may hold several
	-- statements: seq numbers this transaction's schema changes made by
	-- it, so the target can pick the one this is.
	dropped := pg_catalog.current_setting(` + guc + `, true);
	PERFORM pg_catalog.set_config(` + guc + `, '', true);
	last := pg_catalog.current_setting('pglink.ddl_seq', true);
	seq := CASE WHEN pg_catalog.split_part(last, ' ', 1) OPERATOR(pg_catalog.=) pg_catalog.md5(pg_catalog.current_query())
		THEN pg_catalog.split_part(last, ' ', 2)::int OPERATOR(pg_catalog.+) 1 ELSE 0 END;
	PERFORM pg_catalog.set_config('pglink.ddl_seq', pg_catalog.md5(pg_catalog.current_query()) OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) seq::text, true);
	content := ` + n.emit + `(pg_catalog.current_setting('search_path'), CURRENT_USER::text, TG_TAG, seq, dropped);
	EXCEPTION WHEN OTHERS THEN
		RAISE WARNING 'pglink: the schema change was not captured for link ` + link + `: %', SQLERRM
			USING HINT = 'the statement succeeded on the source; make the same change on the target by hand, or the link stops at the next change of this table';
		RETURN;
	END;
	-- Outside the block: a message written in a subtransaction is decoded
	-- after the changes of its transaction, not at its place among them.
	IF content IS NOT NULL THEN
		PERFORM pg_catalog.pg_logical_emit_message(true, ` + quote.Literal(DDLPrefix) + `, content);
	END IF;
	BEGIN
		PERFORM ` + partitionCaptureFunction(link) + `();
	EXCEPTION WHEN OTHERS THEN
		RAISE WARNING 'pglink: a new partition did not get the truncate trigger of link ` + link + `: %', SQLERRM
			USING HINT = 'it gets it at the next start of the link; until then a TRUNCATE of that partition alone does not reach the target: empty it with DELETE';
	END;
END
$f$;
CREATE OR REPLACE FUNCTION ` + n.dropped + `() RETURNS event_trigger LANGUAGE plpgsql AS $f$
BEGIN
	IF pg_catalog.current_setting('pglink.ddl_capture', true) OPERATOR(pg_catalog.=) 'off' THEN
		RETURN;
	END IF;
	PERFORM pg_catalog.set_config(` + guc + `, (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('type', o.object_type,
		'schema', o.schema_name, 'identity', o.object_identity,
		'rel', CASE WHEN o.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND o.object_type IN ('table', 'foreign table') THEN o.objid::bigint END))::text
		FROM pg_catalog.pg_event_trigger_dropped_objects() o WHERE o.original), true);
EXCEPTION WHEN OTHERS THEN
	RAISE WARNING 'pglink: the dropped objects were not captured for link ` + link + `: %', SQLERRM;
END
$f$;
DROP EVENT TRIGGER IF EXISTS ` + n.endTrigger + `;
DROP EVENT TRIGGER IF EXISTS ` + n.dropTrigger + `;
CREATE EVENT TRIGGER ` + n.dropTrigger + ` ON sql_drop EXECUTE FUNCTION ` + n.dropped + `();
CREATE EVENT TRIGGER ` + n.endTrigger + ` ON ddl_command_end EXECUTE FUNCTION ` + n.capture + `();
`
}

// keySQL makes the source's schema pglink and records the link's key
// there, readable by its owner only; the DDL and the truncate capture
// sign with it.
func keySQL(link, key string) string {
	return `CREATE SCHEMA IF NOT EXISTS pglink;
GRANT USAGE ON SCHEMA pglink TO PUBLIC;
CREATE TABLE IF NOT EXISTS pglink.ddl_keys (link text PRIMARY KEY, key text NOT NULL);
REVOKE ALL ON pglink.ddl_keys FROM PUBLIC;
INSERT INTO pglink.ddl_keys VALUES (` + quote.Literal(link) + `, ` + quote.Literal(key) + `)
	ON CONFLICT (link) DO UPDATE SET key = excluded.key;`
}

// UncaptureSQL removes a link's DDL and truncate capture from the source
// (and schema pglink when nothing else is left in it). It runs in a read-write
// transaction of its own: a fenced source starts its sessions read-only.
func UncaptureSQL(link string) string {
	n := captureNamesFor(link)
	return `BEGIN READ WRITE;
SET LOCAL pglink.ddl_capture = off; -- other links' capture: dropping pglink's triggers is no schema change
DROP FUNCTION IF EXISTS ` + truncateFunction(link) + `() CASCADE; -- and its triggers
DROP EVENT TRIGGER IF EXISTS ` + n.endTrigger + `;
DROP EVENT TRIGGER IF EXISTS ` + n.dropTrigger + `;
DROP FUNCTION IF EXISTS ` + n.capture + `();
DROP FUNCTION IF EXISTS ` + n.dropped + `();
DROP FUNCTION IF EXISTS ` + n.emit + `(text, text, text, int, text);
DROP FUNCTION IF EXISTS ` + partitionCaptureFunction(link) + `();
DO $d$ BEGIN
	IF to_regclass('pglink.ddl_keys') IS NOT NULL THEN
		DELETE FROM pglink.ddl_keys WHERE link = ` + quote.Literal(link) + `;
		IF NOT EXISTS (SELECT 1 FROM pglink.ddl_keys) THEN
			DROP TABLE pglink.ddl_keys;
		END IF;
	END IF;
	IF EXISTS (SELECT 1 FROM pg_namespace n WHERE nspname = 'pglink')
		AND NOT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_namespace n ON d.refobjid = n.oid
			WHERE d.refclassid = 'pg_namespace'::regclass AND n.nspname = 'pglink') THEN
		DROP SCHEMA pglink;
	END IF;
END $d$;
COMMIT;`
}

// NewDDLKey makes the key a link's DDL capture signs its messages with.
func NewDDLKey() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make the DDL capture's key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// InstallCapture installs the link's DDL capture on the source, signing
// with key. When the source cannot have it, why says so with the fix:
// PostgreSQL 13 (pgoutput has no logical messages) or a role that may not
// create event triggers (only a superuser can).
func InstallCapture(ctx context.Context, src *pgx.Conn, link, key string) (why string, err error) {
	if serverMajor(src) < 14 {
		return CaptureVersionWhy, nil
	}
	tx, err := src.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("source: install the DDL capture: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET LOCAL transaction_read_only = off"); err != nil {
		return "", fmt.Errorf("source: install the DDL capture: %w", err)
	}
	if _, err := tx.Exec(ctx, captureSQL(link, key)); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			return CaptureRightsWhy, nil
		}
		return "", fmt.Errorf("source: install the DDL capture: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("source: install the DDL capture: %w", err)
	}
	return "", nil
}

// CaptureRightsWhy says why a role that is not a superuser gets no DDL
// capture, and the fix.
const CaptureRightsWhy = "the source role may not create event triggers (only a superuser can): schema changes on the source are not carried, and the link stops at the first change that needs one; " +
	"run pglink start as a superuser of the source (or the managed service's admin role), or start with --ddl ignore"

// CaptureVersionWhy says why a PostgreSQL 13 source gets no DDL capture.
const CaptureVersionWhy = "the source is PostgreSQL 13, whose pgoutput does not carry logical messages: schema changes on the source are not carried, and the link stops at the first change that needs one; upgrade the source to 14 or later to carry them"

func serverMajor(conn *pgx.Conn) int {
	v := conn.PgConn().ParameterStatus("server_version")
	var major int
	fmt.Sscanf(v, "%d", &major)
	return major
}

// RemoveCapture removes the link's DDL capture from the source.
func RemoveCapture(ctx context.Context, src *pgx.Conn, link string) error {
	if _, err := src.Exec(ctx, UncaptureSQL(link)); err != nil {
		// The failed statement left the transaction open.
		src.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return fmt.Errorf("source: remove the DDL capture of link %s (event triggers %s, %s): %w", link,
			captureNamesFor(link).endTrigger, captureNamesFor(link).dropTrigger, err)
	}
	return nil
}

// CaptureInstalled reports whether the link's DDL capture is on the
// source and enabled.
func CaptureInstalled(ctx context.Context, src *pgx.Conn, link string) (bool, error) {
	var n int
	err := src.QueryRow(ctx, `SELECT count(*) FROM pg_event_trigger WHERE evtname = $1 AND evtenabled <> 'D'`,
		captureNamesFor(link).endTrigger).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("source: read the event triggers: %w", err)
	}
	return n > 0, nil
}

// SetDDL records the link's DDL mode, the key its capture signs with, and
// why the capture is off (empty when it is on).
func SetDDL(ctx context.Context, conn *pgx.Conn, link, mode, key, note string) error {
	_, err := conn.Exec(ctx, `UPDATE pglink.links SET ddl_mode = $2, ddl_key = coalesce(nullif($3, ''), ddl_key),
		ddl_note = nullif($4, ''), updated_at = now() WHERE name = $1`, link, mode, key, note)
	if err != nil {
		return fmt.Errorf("target: record the DDL mode of link %s: %w", link, err)
	}
	return nil
}

// DDLSettings are the link's DDL mode, key and note (see SetDDL), and
// the source position from which its capture's messages name their
// transaction (see MarkCaptureBound; 0 when not yet).
type DDLSettings struct {
	Mode, Key, Note string
	BoundFrom       change.LSN
}

// LoadDDL reads the link's DDL settings.
func LoadDDL(ctx context.Context, conn *pgx.Conn, link string) (DDLSettings, error) {
	var s DDLSettings
	var key, note, bound *string
	err := conn.QueryRow(ctx, `SELECT ddl_mode, ddl_key, ddl_note, ddl_bound_from::text FROM pglink.links WHERE name = $1`, link).Scan(&s.Mode, &key, &note, &bound)
	if err != nil {
		return s, fmt.Errorf("target: read the DDL mode of link %s: %w", link, err)
	}
	s.Key, s.Note, s.BoundFrom = Deref(key), Deref(note), ParseLSN(bound)
	return s, nil
}

// MarkCaptureBound records, the first time the link's capture of this
// pglink is in place on the source, the source's WAL position: every
// message of the capture from there on names the transaction that wrote
// it (a signed message is otherwise not bound to one, and a source role
// that read one could write it again with pg_logical_emit_message). The
// apply refuses a message whose transaction is another, and one without a
// transaction from that position on; one before it, written by an older
// pglink's capture, is taken as before. Nothing is recorded while a
// function of an older capture is still in place (one this start could
// not replace).
func MarkCaptureBound(ctx context.Context, src, tgt *pgx.Conn, link string) error {
	var at string
	var bound bool
	err := src.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text, NOT EXISTS (SELECT 1 FROM pg_proc p
		WHERE p.oid IN (to_regprocedure($1), to_regprocedure($2)) AND p.prosrc NOT LIKE '%txid_current()%')`,
		truncateFunction(link)+"()", captureNamesFor(link).emit+"(text, text, text, int, text)").Scan(&at, &bound)
	if err != nil {
		return fmt.Errorf("source: read the WAL position: %w", err)
	}
	if !bound {
		return nil
	}
	_, err = tgt.Exec(ctx, `UPDATE pglink.links SET ddl_bound_from = $2::text::pg_lsn WHERE name = $1 AND ddl_bound_from IS NULL`, link, at)
	if err != nil {
		return fmt.Errorf("target: record where the capture of link %s binds its messages: %w", link, err)
	}
	return nil
}
