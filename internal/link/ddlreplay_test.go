package link

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

// capturedMessages reads (without consuming) the logical messages with prefix
// that slot has seen, as the capture wrote them.
func capturedMessages(t *testing.T, src *pgtest.Cluster, slot, prefix string) []string {
	t.Helper()
	rows, err := src.Connect("app").Query(context.Background(),
		`SELECT data FROM pg_logical_slot_peek_changes($1, NULL, NULL) WHERE data LIKE 'message:%prefix: ' || $2 || ',%'`, slot, prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			t.Fatal(err)
		}
		_, content, ok := strings.Cut(data, " content:")
		if !ok {
			t.Fatalf("no content in %q", data)
		}
		out = append(out, content)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDDLReplayRefused writes again, in transactions of their own, signed
// messages of the capture that a source role could have read (a schema
// change and a partition's TRUNCATE): the apply refuses them, records
// them, and runs neither; the link goes on and both sides stay the same.
func TestDDLReplayRefused(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id bigserial PRIMARY KEY, v text)`,
		`CREATE TABLE public.ev (id bigserial, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k)`,
		`CREATE TABLE public.ev_1 PARTITION OF public.ev FOR VALUES IN (1)`,
		`CREATE TABLE public.ev_2 PARTITION OF public.ev FOR VALUES IN (2)`,
		`INSERT INTO public.t (v) SELECT 'seeded ' || g FROM generate_series(1, 100) g`,
		`INSERT INTO public.ev (k, v) SELECT 1 + g % 2, 'seeded' FROM generate_series(1, 100) g`)
	cfg := Config{Name: "replay", Source: src.URL("app"), Target: dst.URL("app")}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)

	load := startLoad(t, src, ddlWriteLoad)

	// What the capture writes, read the way a role with replication
	// rights could read it.
	src.Exec("app", `SELECT pg_create_logical_replication_slot('spy', 'test_decoding')`)
	defer src.Exec("app", `SELECT pg_drop_replication_slot('spy')`)
	src.Exec("app", `ALTER TABLE public.t ADD COLUMN c1 int`,
		`ALTER TABLE public.t DROP COLUMN c1`,
		`TRUNCATE public.ev_1`,
		`INSERT INTO public.ev (k, v) SELECT 1, 'after' FROM generate_series(1, 30)`)
	ddl := capturedMessages(t, src, "spy", "pglink_ddl")
	truncs := capturedMessages(t, src, "spy", "pglink_truncate")
	if len(ddl) != 2 || len(truncs) != 1 {
		t.Logf("source triggers: %s", count(t, src, "app", `SELECT string_agg(tgrelid::regclass || ' ' || tgname, ', ') FROM pg_trigger`))
		t.Fatalf("captured %d schema changes and %d truncates, want 2 and 1", len(ddl), len(truncs))
	}
	waitCaughtUp(t, l, src, "app", time.Minute)

	// Written again: the column added anew, the partition emptied anew.
	conn := src.Connect("app")
	for _, m := range []struct{ prefix, content string }{{"pglink_ddl", ddl[0]}, {"pglink_truncate", truncs[0]}} {
		if _, err := conn.Exec(context.Background(), `SELECT pg_logical_emit_message(true, $1, $2)`, m.prefix, m.content); err != nil {
			t.Fatal(err)
		}
	}
	before := load.writes.Load()
	waitFor(t, "more writes", 30*time.Second, l, func() (bool, error) { return load.writes.Load() > before+20, nil })
	load.halt()
	waitCaughtUp(t, l, src, "app", time.Minute)

	if got, want := count(t, dst, "app", columnsSQL), count(t, src, "app", columnsSQL); got != want {
		t.Fatalf("columns differ:\nsource %s\ntarget %s", want, got)
	}
	assertSame(t, src, dst, "app", "app")
	if got := count(t, dst, "app", `SELECT count(*) FROM pglink.history WHERE link = 'replay' AND event = 'ddl_ignored' AND detail LIKE '%refused: it was written in source transaction%'`); got != "2" {
		t.Fatalf("pglink.history holds %s records of refused messages, want 2", got)
	}
	st := linkStatus(t, "replay", dst.URL("app"), "")
	if string(st.Phase) != "replicating" || st.LastError != "" {
		t.Fatalf("phase %s, last error %q", st.Phase, st.LastError)
	}
}

// TestDDLReplayedRule checks which messages the carrier refuses: another
// transaction's, and one naming none from the position where the link's
// capture names one in every message (before it: an older pglink's).
func TestDDLReplayedRule(t *testing.T) {
	d := &ddlCarrier{bound: 1000}
	xid := func(x uint32) *uint32 { return &x }
	for _, c := range []struct {
		at      change.LSN
		txn     uint32
		xid     *uint32
		refused bool
	}{
		{at: 2000, txn: 7, xid: xid(7)},
		{at: 2000, txn: 7, xid: xid(8), refused: true},
		{at: 500, txn: 7, xid: xid(8), refused: true},
		{at: 500, txn: 7},
		{at: 1000, txn: 7, refused: true},
	} {
		why := d.replayed(&change.Change{MessageLSN: c.at, XID: c.txn}, c.xid)
		if (why != "") != c.refused {
			t.Errorf("message at %s in transaction %d naming %v: refused %q, want refused %v", c.at, c.txn, c.xid, why, c.refused)
		}
	}
	if why := (&ddlCarrier{}).replayed(&change.Change{MessageLSN: 5, XID: 1}, nil); why != "" {
		t.Errorf("a link not yet bound refused an older message: %s", why)
	}
}
