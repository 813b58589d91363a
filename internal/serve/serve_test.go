package serve

import (
	"context"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
)

// TestServeLinks runs two links from one source server (two databases)
// into one target server in one process, checks that /metrics moves with
// the writes, then reloads a file that removes one link and adds another.
func TestServeLinks(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	for _, db := range []string{"shop", "crm", "inv"} {
		fillDB(src, db, 1000)
	}
	cfg := tempFile(t, "links.yaml")
	writeConfig(t, cfg, "links:\n"+linkYAML("shop", src.URL("shop"), dst.URL("shop"))+linkYAML("crm", src.URL("crm"), dst.URL("crm"))+
		"    wal-warn: 1\n")
	ctx := context.Background()
	srv, err := Start(ctx, Options{ConfigPath: cfg, Listen: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(ctx)
	for _, name := range []string{"shop", "crm"} {
		waitUntil(t, name+" replicating", 2*time.Minute, func() bool {
			l, _ := liveOf(srv, name)
			return l.State == "replicating"
		})
	}
	before := scrape(t, srv.Addr())
	write(src, "shop", 5000)
	write(src, "crm", 5000)
	waitCaughtUp(t, "shop", dst.URL("shop"), src, "shop")
	waitCaughtUp(t, "crm", dst.URL("crm"), src, "crm")
	assertSame(t, src, dst, "shop", "shop")
	assertSame(t, src, dst, "crm", "crm")

	// The counters moved by what was written: 100 inserts, 10 updates and
	// 10 deletes in one transaction each, per link.
	var after = scrape(t, srv.Addr())
	for _, name := range []string{"shop", "crm"} {
		for kind, want := range map[string]float64{"insert": 100, "update": 10, "delete": 10} {
			b, _ := metric(before, "pglink_applied_rows_total", "link", name, "kind", kind)
			a, ok := metric(after, "pglink_applied_rows_total", "link", name, "kind", kind)
			if !ok || a-b != want {
				t.Errorf("%s: pglink_applied_rows_total{kind=%s} went from %v to %v, want +%v", name, kind, b, a, want)
			}
		}
		b, _ := metric(before, "pglink_applied_transactions_total", "link", name)
		a, _ := metric(after, "pglink_applied_transactions_total", "link", name)
		if a-b < 3 { // the three writes, and heartbeats
			t.Errorf("%s: pglink_applied_transactions_total went from %v to %v", name, b, a)
		}
		bb, _ := metric(before, "pglink_apply_batches_total", "link", name)
		ba, ok := metric(after, "pglink_apply_batches_total", "link", name)
		if !ok || ba <= bb || ba-bb > a-b { // a batch holds one source transaction or more
			t.Errorf("%s: pglink_apply_batches_total went from %v to %v, with %v transactions", name, bb, ba, a-b)
		}
		if v, ok := metric(after, "pglink_link_phase", "link", name, "phase", "replicating"); !ok || v != 1 {
			t.Errorf("%s: pglink_link_phase{phase=replicating} = %v, %v", name, v, ok)
		}
		if _, ok := metric(after, "pglink_lag_bytes", "link", name); !ok {
			t.Errorf("%s: no pglink_lag_bytes", name)
		}
		if v, ok := metric(after, "pglink_lag_seconds", "link", name); !ok || v > 5 {
			t.Errorf("%s: pglink_lag_seconds = %v, %v after catching up", name, v, ok)
		}
		if v, ok := metric(after, "pglink_last_apply_timestamp_seconds", "link", name); !ok || time.Since(time.Unix(int64(v), 0)) > time.Minute {
			t.Errorf("%s: pglink_last_apply_timestamp_seconds = %v, %v", name, v, ok)
		}
	}
	if v, ok := metric(after, "pglink_seed_copied_rows", "link", "shop"); !ok || v != 1000 {
		t.Errorf("pglink_seed_copied_rows{link=shop} = %v, %v; want the 1000 rows seeded", v, ok)
	}
	// The WAL guard of crm (wal-warn: 1 byte) warns; shop's (1GB) does not.
	waitUntil(t, "the slots' retained WAL read", time.Minute, func() bool {
		s, _ := liveOf(srv, "shop")
		c, _ := liveOf(srv, "crm")
		return s.SlotRetainedBytes != nil && c.SlotRetainedBytes != nil && *c.SlotRetainedBytes > 1
	})
	s, _ := liveOf(srv, "shop")
	c, _ := liveOf(srv, "crm")
	if s.WALWarning != "" || s.WALWarnBytes != 1<<30 || c.WALWarning == "" || c.WALWarnBytes != 1 {
		t.Errorf("WAL guard: shop %q (threshold %d), crm %q (threshold %d)", s.WALWarning, s.WALWarnBytes, c.WALWarning, c.WALWarnBytes)
	}
	fams := scrape(t, srv.Addr())
	if v, ok := metric(fams, "pglink_slot_wal_warn_bytes", "link", "crm"); !ok || v != 1 {
		t.Errorf("pglink_slot_wal_warn_bytes{link=crm} = %v, %v", v, ok)
	}
	if code, body := get(t, "http://"+srv.Addr()+"/readyz", ""); code != 200 {
		t.Errorf("/readyz: %d %s", code, body)
	}

	// Reload: crm goes, inv comes, shop goes on untouched.
	shopBefore, _ := liveOf(srv, "shop")
	writeConfig(t, cfg, "links:\n"+linkYAML("shop", src.URL("shop"), dst.URL("shop"))+linkYAML("inv", src.URL("inv"), dst.URL("inv")))
	if err := srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := liveOf(srv, "crm"); ok {
		t.Fatal("crm still runs after the reload removed it")
	}
	if held, err := state.LeaseHeld(ctx, dst.Connect("crm"), "crm"); err != nil || held {
		t.Fatalf("crm's lease after the reload: held %v, %v", held, err)
	}
	waitUntil(t, "inv replicating", 2*time.Minute, func() bool {
		l, _ := liveOf(srv, "inv")
		return l.State == "replicating"
	})
	if l, _ := liveOf(srv, "shop"); l.AppliedTxns < shopBefore.AppliedTxns || l.Errors != 0 {
		t.Errorf("shop was restarted by the reload: %d transactions before, %d after, %d errors", shopBefore.AppliedTxns, l.AppliedTxns, l.Errors)
	}
	write(src, "inv", 5000)
	write(src, "shop", 6000)
	waitCaughtUp(t, "inv", dst.URL("inv"), src, "inv")
	waitCaughtUp(t, "shop", dst.URL("shop"), src, "shop")
	assertSame(t, src, dst, "inv", "inv")
	assertSame(t, src, dst, "shop", "shop")

	// A file with a mistake changes nothing.
	writeConfig(t, cfg, "links:\n"+linkYAML("shop", src.URL("shop"), dst.URL("shop"))+"    jbos: 2\n")
	if err := srv.Reload(ctx); err == nil {
		t.Fatal("a reload of a bad file succeeded")
	}
	if _, ok := liveOf(srv, "inv"); !ok {
		t.Fatal("a bad file stopped a link")
	}
}
