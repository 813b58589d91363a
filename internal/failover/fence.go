package failover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/wait"
)

// The fence makes a source database refuse writes from every role and
// session, with the same SQL whether pglink runs it or a script does:
//
//   - the database's default_transaction_read_only = on gives new sessions
//     read-only transactions, and a clear error early;
//   - every table and partition gets a statement trigger that refuses
//     INSERT, UPDATE, DELETE and TRUNCATE, enabled ALWAYS so it fires even
//     in a session that sets default_transaction_read_only = off or
//     session_replication_role = replica;
//   - the database's other sessions are ended (pglink's own, named by
//     their application_name, are spared: the link must keep streaming).
//
// Creating a trigger waits for the writes in flight on its table, so once
// the fence is up every write that will ever commit on the source has
// committed. Everything the fence made lives in schema pglink_fence:
// dropping it (CASCADE) takes the triggers along.
const FenceSchema = "pglink_fence"

// fenceSetupSQL creates the fence's function and sets the database default.
const fenceSetupSQL = `BEGIN READ WRITE;
SET LOCAL pglink.ddl_capture = off; -- the fence is no schema change for the target
CREATE SCHEMA IF NOT EXISTS pglink_fence;
CREATE OR REPLACE FUNCTION pglink_fence.refuse_write() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	RAISE EXCEPTION 'database % is fenced by pglink: it refuses writes', current_database()
		USING ERRCODE = '25006',
		      HINT = 'the database was moved; point the application at the new one (pglink release-source makes this one writable again)';
END
$f$;
DO $d$ BEGIN
	EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database());
END $d$;
COMMIT;`

// endSessionsSQL ends the database's other client sessions but pglink's.
const endSessionsSQL = `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
  AND application_name NOT LIKE 'pglink%';`

// fenceTablesSQL puts the trigger on every table and partition that lacks it.
const fenceTablesSQL = `BEGIN READ WRITE;
SET LOCAL pglink.ddl_capture = off; -- the fence is no schema change for the target
SET LOCAL lock_timeout = '5s';
DO $d$ DECLARE r record; BEGIN
	FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND c.relpersistence IN ('p', 'u')
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pglink', 'pglink_fence')
		  AND n.nspname !~ '^pg_(toast|temp)'
		  AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'pglink_fence')
		ORDER BY c.oid
	LOOP
		EXECUTE format('CREATE TRIGGER pglink_fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION pglink_fence.refuse_write()', r.rel);
		EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER pglink_fence', r.rel);
	END LOOP;
END $d$;
COMMIT;`

// fenceCheckSQL proves the fence from a transaction that turned read-only
// off: a DELETE that touches no row still fires a statement trigger, so
// every table must refuse it. It fails naming the tables that did not, and
// is rolled back, so it changes nothing.
const fenceCheckSQL = `BEGIN READ WRITE;
DO $d$ DECLARE r record; open text := ''; BEGIN
	FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND c.relpersistence IN ('p', 'u')
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pglink', 'pglink_fence')
		  AND n.nspname !~ '^pg_(toast|temp)'
		ORDER BY 1
	LOOP
		BEGIN
			EXECUTE format('DELETE FROM %s WHERE false', r.rel);
			open := open || ' ' || r.rel::text;
		EXCEPTION WHEN read_only_sql_transaction THEN
			IF SQLERRM NOT LIKE '%fenced by pglink%' THEN RAISE; END IF;
		END;
	END LOOP;
	IF open <> '' THEN
		RAISE EXCEPTION 'these tables still accept writes:%', open;
	END IF;
END $d$;
ROLLBACK;`

// unfenceSQL removes the fence: the triggers go with the schema. Like the
// fence's own statements, it runs in an explicit read-write transaction:
// the session may have started read-only.
const unfenceSQL = `BEGIN READ WRITE;
SET LOCAL pglink.ddl_capture = off; -- the fence is no schema change for the target
DROP SCHEMA IF EXISTS pglink_fence CASCADE;
DO $d$ BEGIN
	EXECUTE format('ALTER DATABASE %I RESET default_transaction_read_only', current_database());
END $d$;
COMMIT;`

// FenceResult says what the fence did.
type FenceResult struct {
	Tables        int // tables and partitions that refuse writes
	EndedSessions int // sessions ended
}

// Fence makes the source database refuse writes, and proves it. Writes in
// flight that hold a table's lock for longer than the lock timeout get
// their sessions ended again, up to attempts times.
func Fence(ctx context.Context, conn *pgx.Conn) (FenceResult, error) {
	var res FenceResult
	if err := execTx(ctx, conn, fenceSetupSQL); err != nil {
		return res, fmt.Errorf("source: make the database read-only: %w", err)
	}
	const attempts = 5
	for i := 1; ; i++ {
		var ended int
		if err := conn.QueryRow(ctx, endSessionsSQL).Scan(&ended); err != nil {
			return res, fmt.Errorf("source: end the database's sessions (needs superuser or pg_signal_backend): %w", err)
		}
		res.EndedSessions += ended
		err := execTx(ctx, conn, fenceTablesSQL)
		if err == nil {
			break
		}
		if !isLockTimeout(err) || i == attempts {
			return res, fmt.Errorf("source: put the write fence on the tables: %w", err)
		}
		if err := wait.Sleep(ctx, 100*time.Millisecond); err != nil {
			return res, err
		}
	}
	n, err := checkFence(ctx, conn)
	if err != nil {
		return res, err
	}
	res.Tables = n
	return res, nil
}

// checkFence proves the fence and counts the fenced tables.
func checkFence(ctx context.Context, conn *pgx.Conn) (fenced int, err error) {
	if err := execTx(ctx, conn, fenceCheckSQL); err != nil {
		return 0, fmt.Errorf("source: check the write fence: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgname = 'pglink_fence'`).Scan(&fenced); err != nil {
		return 0, fmt.Errorf("source: count the fenced tables: %w", err)
	}
	return fenced, nil
}

// Unfence makes the source database writable again.
func Unfence(ctx context.Context, conn *pgx.Conn) error {
	if err := execTx(ctx, conn, unfenceSQL); err != nil {
		return fmt.Errorf("source: remove the write fence: %w", err)
	}
	return nil
}

func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// execTx runs statements that open and close a transaction of their own;
// on an error it rolls the open transaction back, so the session stays
// usable.
func execTx(ctx context.Context, conn *pgx.Conn, sql string) error {
	if _, err := conn.Exec(ctx, sql); err != nil {
		conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return err
	}
	return nil
}
