package link

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/validate"
)

// TestGuardRefusesOthers writes into every kind of linked table as an
// ordinary role of the target that turned the read-only default off, and
// changes their schema: all refused, while the link goes on applying and
// the tables stay equal. A guard removed by a superuser is reported by
// status and validate, and put back by the next start.
func TestGuardRefusesOthers(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE plain (id int PRIMARY KEY, v text)`,
		`CREATE TABLE nokey (v text)`, `ALTER TABLE nokey REPLICA IDENTITY FULL`,
		`CREATE TABLE parted (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k)`,
		`CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10)`,
		`CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (10) TO (20)`,
		`INSERT INTO plain SELECT g, 'v' FROM generate_series(1, 100) g`,
		`INSERT INTO nokey SELECT 'v' || g FROM generate_series(1, 100) g`,
		`INSERT INTO parted SELECT g, g % 20 FROM generate_series(1, 100) g`)
	// libpq's keepalive parameters as users write them, which every
	// session of the link (pg_dump's, the schema's, the copy's) must take.
	keep := "&keepalives=1&keepalives_idle=10&tcp_user_timeout=20000"
	cfg := Config{Name: "guard", Source: src.URL("app") + keep, Target: dst.URL("app") + keep}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", 2*time.Minute)

	dst.Exec("app", `SET default_transaction_read_only = off`, `CREATE ROLE writer LOGIN PASSWORD 'pw'`,
		`GRANT ALL ON ALL TABLES IN SCHEMA public TO writer`, `GRANT CREATE ON SCHEMA public TO writer`)
	writer := fmt.Sprintf("host=127.0.0.1 port=%d dbname=app user=writer password=pw sslmode=disable", dst.Port)
	refused := []string{
		"INSERT INTO plain VALUES (1000, 'x')", "UPDATE plain SET v = 'x'", "DELETE FROM plain", "TRUNCATE plain",
		"INSERT INTO nokey VALUES ('x')", "UPDATE nokey SET v = 'x'", "DELETE FROM nokey", "TRUNCATE nokey",
		"INSERT INTO parted VALUES (1000, 1)", "UPDATE parted SET k = 11 WHERE k = 1", "TRUNCATE parted",
		"INSERT INTO parted_1 VALUES (1001, 1)", "DELETE FROM parted_2", "TRUNCATE parted_1",
	}
	for _, sql := range refused {
		if err := pgtest.ExecOn(writer, "SET default_transaction_read_only = off", sql); err == nil {
			t.Errorf("target accepted a write from an ordinary role: %s", sql)
		} else if !strings.Contains(err.Error(), "read-only") {
			t.Errorf("%s: refused with %v, want the guard's read-only error", sql, err)
		}
	}
	// The owner of a table may change its schema: the DDL guard refuses.
	dst.Exec("app", `SET default_transaction_read_only = off`, `SET session_replication_role = replica`,
		`ALTER TABLE plain OWNER TO writer`, `ALTER TABLE parted OWNER TO writer`,
		`ALTER TABLE parted_1 OWNER TO writer`)
	for _, sql := range []string{
		"ALTER TABLE plain DISABLE TRIGGER pglink_read_only_guard", "DROP TRIGGER pglink_read_only_guard ON plain",
		"ALTER TABLE plain ADD COLUMN w int", "DROP TABLE plain", "CREATE INDEX ON plain (v)",
		"ALTER TABLE parted DETACH PARTITION parted_1", "DROP TABLE parted_1",
		"CREATE TABLE parted_3 PARTITION OF parted FOR VALUES FROM (20) TO (30)",
	} {
		if err := pgtest.ExecOn(writer, "SET default_transaction_read_only = off", sql); err == nil {
			t.Errorf("target accepted a schema change from the tables' owner: %s", sql)
		}
	}
	if err := pgtest.ExecOn(writer, "SET default_transaction_read_only = off", "CREATE TABLE mine (i int)", "DROP TABLE mine"); err != nil {
		t.Errorf("a table of the user's own, not linked, is refused: %v", err)
	}

	src.Exec("app", `UPDATE plain SET v = 'w' WHERE id <= 10`, `DELETE FROM nokey WHERE v = 'v7'`,
		`UPDATE parted SET k = 15 WHERE id = 3`, `DELETE FROM parted_2 WHERE id > 90`)
	waitCaughtUp(t, l, src, "app", time.Minute)
	assertSame(t, src, dst, "app", "app")
	if st := linkStatus(t, "guard", cfg.Target, cfg.Source); len(st.Warnings) != 0 {
		t.Errorf("status warns with every guard in place: %q", st.Warnings)
	}

	// A superuser can remove a guard (with the link's own setting): status
	// and validate say so, and the next start puts it back.
	dst.Exec("app", `SET default_transaction_read_only = off`, `SET session_replication_role = replica`, `DROP TRIGGER pglink_read_only_guard ON parted_2`,
		`ALTER EVENT TRIGGER pglink_guard_ddl DISABLE`)
	st := linkStatus(t, "guard", cfg.Target, cfg.Source)
	if w := strings.Join(st.Warnings, "\n"); !contains(w, "parted_2", "read-only guard", "pglink_guard_ddl") {
		t.Errorf("status with a guard removed warns %q, want parted_2 and the DDL guard named", w)
	}
	rep, err := validate.Link(context.Background(), validate.LinkOptions{Name: "guard", Source: cfg.Source, Target: cfg.Target})
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if w := strings.Join(rep.Warnings, "\n"); !rep.Equal() || !contains(w, "parted_2", "pglink_guard_ddl") {
		t.Errorf("validate with a guard removed: equal %v, warnings %q", rep.Equal(), w)
	}
	if err := l.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	dst.Exec("app", `SET default_transaction_read_only = off`, `ALTER EVENT TRIGGER pglink_guard_ddl ENABLE`)
	l = startTestLink(t, cfg)
	waitFor(t, "the guard put back", time.Minute, l, func() (bool, error) {
		st := linkStatus(t, "guard", cfg.Target, cfg.Source)
		return st.Running && len(st.Warnings) == 0, nil
	})
	if err := pgtest.ExecOn(writer, "SET default_transaction_read_only = off", "DELETE FROM parted_2"); err == nil {
		t.Errorf("the next start did not put the guard of parted_2 back")
	}
	if err := l.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := state.Drop(context.Background(), "guard", cfg.Source, cfg.Target, nil); err != nil {
		t.Fatalf("drop: %v", err)
	}
	if got := dst.QueryString("app", `SELECT count(*) FROM pg_event_trigger`); got != "0" {
		t.Errorf("after drop the target has %s event triggers", got)
	}
	if err := pgtest.ExecOn(writer, "INSERT INTO plain VALUES (1000, 'x')", "ALTER TABLE plain ADD COLUMN w int"); err != nil {
		t.Errorf("after drop the target refuses the owner: %v", err)
	}
}
