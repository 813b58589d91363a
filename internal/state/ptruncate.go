package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/quote"
)

// TruncatePrefix marks the logical decoding messages of the source's
// truncate capture: a partition of a linked table was truncated.
//
// The publication sends a partition's changes as its root's
// (publish_via_partition_root), and pgoutput then sends no TRUNCATE of a
// partition truncated on its own. A statement trigger AFTER TRUNCATE on
// every partition writes this message instead, at the truncate's place in
// its transaction, and the target truncates the same partition there.
const TruncatePrefix = "pglink_truncate"

// TruncateTrigger is the name of the link's truncate trigger on each
// partition of the source.
func TruncateTrigger(link string) string { return "pglink_truncate_" + link }

func truncateFunction(link string) string {
	return "pglink." + quote.Ident("truncate_"+link)
}

// truncateFunctionSQL makes the trigger function. It is SECURITY DEFINER
// so that any role that may truncate a partition can sign with the link's
// key, which only the function's owner can read; a trigger function
// cannot be called other than by a trigger, and only pglink's role may
// create triggers with it. The message tells the truncate happened on
// that relation (TG_RELID), nothing the role did not do. The message is
// written outside the exception block (a message written in a
// subtransaction is decoded after its transaction's changes), and
// nothing else can make the source's TRUNCATE fail.
func truncateFunctionSQL(link string) string {
	fn := truncateFunction(link)
	return `CREATE OR REPLACE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp AS $f$
DECLARE payload text; k text; content text;
BEGIN
	BEGIN
		payload := jsonb_build_object('link', ` + quote.Literal(link) + `, 'rel', TG_RELID::bigint,
			'schema', TG_TABLE_SCHEMA, 'name', TG_TABLE_NAME, 'at', clock_timestamp(),
			'xid', txid_current() % 4294967296)::text;
		SELECT d.key INTO STRICT k FROM pglink.ddl_keys d WHERE d.link = ` + quote.Literal(link) + `;
		content := encode(sha256(convert_to(k || encode(sha256(convert_to(k || payload, 'UTF8')), 'hex'), 'UTF8')), 'hex') || E'\n' || payload;
	EXCEPTION WHEN OTHERS THEN
		RAISE WARNING 'pglink: the TRUNCATE of %.% was not captured for link ` + link + `: %', TG_TABLE_SCHEMA, TG_TABLE_NAME, SQLERRM
			USING HINT = 'the statement succeeded on the source; empty the partition on the target by hand (after pglink failover), or pglink validate shows the difference';
		RETURN NULL;
	END;
	PERFORM pg_logical_emit_message(true, ` + quote.Literal(TruncatePrefix) + `, content);
	RETURN NULL;
END
$f$;
REVOKE ALL ON FUNCTION ` + fn + `() FROM PUBLIC;
`
}

// partitionsLackingSQL lists, as rel, every partition (leaf or not) of
// the publication's tables that lacks the link's truncate trigger.
func partitionsLackingSQL(link, pub string) string {
	return `SELECT format('%I.%I', n.nspname, c.relname) AS rel
		FROM pg_publication p JOIN pg_publication_rel pr ON pr.prpubid = p.oid
		CROSS JOIN LATERAL pg_partition_tree(pr.prrelid) t
		JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE p.pubname = ` + quote.Literal(pub) + ` AND t.relid <> pr.prrelid
			AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = t.relid AND g.tgname = ` + quote.Literal(TruncateTrigger(link)) + `)
		ORDER BY 1`
}

// lockPartitionsSQL takes, up front, the lock that creating the truncate
// trigger takes on each partition lacking it (SHARE ROW EXCLUSIVE, which
// waits for the applications' writes in progress and holds off new ones),
// so that InstallTruncateCapture waits for locks in this one statement,
// whose time it bounds. A partition the role may not lock is left to the
// trigger's creation, which says whether the role may have it there.
func lockPartitionsSQL(link, pub string) string {
	return `DO $d$ DECLARE r record; BEGIN
	FOR r IN ` + partitionsLackingSQL(link, pub) + `
	LOOP
		BEGIN
			EXECUTE format('LOCK TABLE ONLY %s IN SHARE ROW EXCLUSIVE MODE', r.rel);
		EXCEPTION WHEN insufficient_privilege THEN
			NULL;
		END;
	END LOOP;
END $d$;`
}

// truncateTriggersSQL gives every partition (leaf or not) of the
// publication's tables that lacks it the link's trigger, enabled ALWAYS
// (a source that is itself a replica carries its truncates as it carries
// its rows), and leaves the partitions the role may not have it on
// (owner or superuser only) in the setting pglink.truncate_missing.
func truncateTriggersSQL(link, pub string) string {
	trig, fn := quote.Literal(TruncateTrigger(link)), quote.Literal(truncateFunction(link))
	return `DO $d$ DECLARE r record; missing text[] := '{}'; BEGIN
	FOR r IN ` + partitionsLackingSQL(link, pub) + `
	LOOP
		BEGIN
			EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()', ` + trig + `, r.rel, ` + fn + `);
			EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', r.rel, ` + trig + `);
		EXCEPTION WHEN insufficient_privilege THEN
			missing := missing || r.rel;
		END;
	END LOOP;
	PERFORM set_config('pglink.truncate_missing', array_to_string(missing, ', '), true);
END $d$;`
}

func partitionCaptureFunction(link string) string {
	return "pglink." + quote.Ident("ddl_partitions_"+link)
}

// partitionCaptureSQL makes the function the DDL capture calls at each
// schema change: a partition of a linked table made or attached by it
// gets the link's truncate trigger at once, in the same transaction, as
// the next start would give it (truncateTriggersSQL). It is SECURITY
// DEFINER, since the trigger function may be used by pglink's role only;
// it only works inside an event trigger (it reads
// pg_event_trigger_ddl_commands) and only adds that trigger, and its own
// schema changes are not captured. The caller turns its errors into a
// WARNING.
func partitionCaptureSQL(link, pub string) string {
	fn, trig, tfn := partitionCaptureFunction(link), quote.Literal(TruncateTrigger(link)), quote.Literal(truncateFunction(link))
	return `CREATE OR REPLACE FUNCTION ` + fn + `() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp AS $f$
DECLARE r record; was text;
BEGIN
	IF to_regprocedure(` + tfn + ` || '()') IS NULL OR NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
			JOIN pg_class k ON k.oid = c.objid WHERE c.classid = 'pg_class'::regclass AND (k.relkind = 'p' OR k.relispartition)) THEN
		RETURN;
	END IF;
	was := current_setting('pglink.ddl_capture', true);
	PERFORM set_config('pglink.ddl_capture', 'off', true);
	FOR r IN SELECT format('%I.%I', n.nspname, c.relname) AS rel
		FROM pg_publication p JOIN pg_publication_rel pr ON pr.prpubid = p.oid
		CROSS JOIN LATERAL pg_partition_tree(pr.prrelid) t
		JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE p.pubname = ` + quote.Literal(pub) + ` AND t.relid <> pr.prrelid
			AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = t.relid AND g.tgname = ` + trig + `)
	LOOP
		EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()', ` + trig + `, r.rel, ` + tfn + `);
		EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', r.rel, ` + trig + `);
	END LOOP;
	PERFORM set_config('pglink.ddl_capture', coalesce(was, ''), true);
END
$f$;
REVOKE ALL ON FUNCTION ` + fn + `() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ` + fn + `() TO PUBLIC;
`
}

// TruncateVersionWhy says why a PostgreSQL 13 source gets no truncate
// capture.
const TruncateVersionWhy = "the source is PostgreSQL 13, whose pgoutput does not carry logical messages: a TRUNCATE of a single partition on the source does not reach the target; " +
	"while linked, empty a partition with DELETE or truncate its partitioned table (pglink validate finds a partition emptied otherwise), or upgrade the source to 14 or later"

// truncateRightsWhy says why partitions get no truncate capture.
func truncateRightsWhy(partitions string) string {
	return "the source role may not create triggers on " + partitions + " (only their owner or a superuser can): a TRUNCATE of one of these partitions alone does not reach the target; " +
		"run pglink start as their owner or a superuser of the source (it adds the trigger at each start), or, while linked, empty such a partition with DELETE or truncate its partitioned table"
}

// InstallTruncateCapture puts the link's truncate trigger on every
// partition of the publication's tables that lacks it (a partition made
// since the last start gets it), signing with key. It is safe to run at
// every start. When some or all partitions cannot have it, why says
// which, and the fix; the link goes on without.
func InstallTruncateCapture(ctx context.Context, src *pgx.Conn, link, pub, key string, logf func(string)) (why string, err error) {
	if serverMajor(src) < 14 {
		return TruncateVersionWhy, nil
	}
	var missing string
	err = yieldingLocks(ctx, src, "install the truncate capture", logf, func(tx pgx.Tx, bound time.Duration) error {
		// The capture's objects are no schema change for the target.
		sql := "SET LOCAL transaction_read_only = off;\nSET LOCAL pglink.ddl_capture = off;\n" + keySQL(link, key) + "\n" + truncateFunctionSQL(link)
		if _, err := tx.Exec(ctx, sql); err != nil {
			return err
		}
		if err := boundedExec(ctx, tx, bound, lockPartitionsSQL(link, pub)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, truncateTriggersSQL(link, pub)); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT current_setting('pglink.truncate_missing')`).Scan(&missing)
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			return truncateRightsWhy("the partitions of the linked tables (it may not create schema pglink or its function: " + pgErr.Message + ")"), nil
		}
		if strings.HasPrefix(err.Error(), "source: ") {
			return "", err
		}
		return "", fmt.Errorf("source: install the truncate capture: %w", err)
	}
	if strings.TrimSpace(missing) != "" {
		return truncateRightsWhy(missing), nil
	}
	return "", nil
}
