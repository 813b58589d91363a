package link

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
)

// TestLinkEndToEnd seeds a target from a source holding every tricky case,
// streams changes of every kind, and checks both sides row by row, the
// status, the read-only target, and that drop removes everything.
func TestLinkEndToEnd(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("shop")
	execFile(t, src, "shop", "testdata/fixture.sql")
	cfg := Config{Name: "e2e", Source: src.URL("shop"), Target: dst.URL("shop_copy")}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", 2*time.Minute)
	assertSame(t, src, dst, "shop", "shop_copy")
	// Right after seeding, the copies get the planner's statistics.
	notAnalyzed := `SELECT count(*) FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
		WHERE c.relkind = 'r' AND s.schemaname <> 'pglink' AND s.last_analyze IS NULL`
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		n := dst.QueryString("shop_copy", notAnalyzed)
		if n == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after seeding, %s copied tables are not analyzed", n)
		}
	}

	execFile(t, src, "shop", "testdata/changes.sql")
	waitCaughtUp(t, l, src, "shop", time.Minute)
	assertSame(t, src, dst, "shop", "shop_copy")
	if got := count(t, dst, "shop_copy", "SELECT count(*) FROM shop.log WHERE msg = 'dup'"); got != "2" {
		t.Errorf("REPLICA IDENTITY FULL delete of one duplicate: target has %s rows, want 2", got)
	}

	// Read-only for everyone but the link, even for a session that asks
	// otherwise (in a statement of its own: the transaction that sets it
	// is read-only already).
	if err := execErr(dst, "shop_copy", "INSERT INTO shop.customers (name) VALUES ('x')"); err == nil {
		t.Errorf("target accepted a write from a user session")
	}
	for _, sql := range []string{"DELETE FROM shop.log", "TRUNCATE shop.events", "UPDATE shop.events_2024 SET what = 'x'"} {
		if err := pgtest.ExecOn(dst.URL("shop_copy"), "SET default_transaction_read_only = off", sql); err == nil {
			t.Errorf("target accepted a write from a user session: %s", sql)
		}
	}

	st := linkStatus(t, "e2e", cfg.Target, cfg.Source)
	b, _ := json.Marshal(st)
	var fields map[string]any
	json.Unmarshal(b, &fields)
	for _, k := range []string{"name", "phase", "source_lsn", "applied_lsn", "lag_bytes", "lag_seconds", "tables"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("status JSON lacks %q: %s", k, b)
		}
	}
	if st.Phase != "replicating" || !st.Running || st.LagBytes == nil || len(st.Tables) != 7 {
		t.Errorf("status = %+v", st)
	}
	for _, tb := range st.Tables {
		if tb.State != "copied" {
			t.Errorf("table %s state %s, want copied", tb.Name, tb.State)
		}
	}

	if err := l.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := state.Drop(context.Background(), "e2e", cfg.Source, cfg.Target, nil); err != nil {
		t.Fatalf("drop: %v", err)
	}
	for db, sql := range map[string]string{
		"slots":        "SELECT count(*) FROM pg_replication_slots",
		"publications": "SELECT count(*) FROM pg_publication",
	} {
		if got := src.QueryString("shop", sql); got != "0" {
			t.Errorf("after drop the source has %s %s", got, db)
		}
	}
	if got := dst.QueryString("shop_copy", "SELECT count(*) FROM pg_replication_origin"); got != "0" {
		t.Errorf("after drop the target has %s origins", got)
	}
	if got := dst.QueryString("shop_copy", "SELECT count(*) FROM pg_namespace WHERE nspname = 'pglink'"); got != "0" {
		t.Errorf("after drop the target still has the pglink schema")
	}
	if err := execErr(dst, "shop_copy", "INSERT INTO shop.customers (id, name) VALUES (1000000, 'writable again')"); err != nil {
		t.Errorf("after drop the target is not writable: %v", err)
	}
	if got := dst.QueryString("shop_copy", "SELECT count(*) FROM \"Mixed Case\".\"Order Items\""); got != "450" {
		t.Errorf("after drop the target data changed: %s rows, want 450", got)
	}
}
