package failover

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/link"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
)

// runLink runs a link in the test process until the test ends or the link
// ends by itself (a failover cuts it); the returned channel gives its end.
func runLink(t *testing.T, name, source, target string) chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := link.Config{Name: name, Source: source, Target: target, Jobs: 2,
		Logger: slog.New(slog.NewTextHandler(pgtest.LogTo(t), &slog.HandlerOptions{Level: slog.LevelInfo}))}
	go func() { done <- link.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("link %s did not stop", name)
		}
	})
	return done
}

// startWriterOn starts a writer on url and waits until it has committed
// a few hundred orders.
func (f *fixture) startWriterOn(ctx context.Context, url string) (w *writer, done chan struct{}) {
	f.t.Helper()
	w, done = &writer{}, make(chan struct{})
	go func() { w.run(ctx, url); close(done) }()
	f.waitFor("the writer under way", time.Minute, func() bool { return w.count() > 300 })
	return w, done
}

// missingOrders counts the orders w saw committed that url lacks.
func missingOrders(t *testing.T, url string, w *writer) int {
	t.Helper()
	w.mu.Lock()
	ids := append([]int64(nil), w.committed...)
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var missing int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM unnest($1::bigint[]) u(id) WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = u.id)`, ids).Scan(&missing); err != nil {
		t.Fatal(err)
	}
	return missing
}

// TestFailbackUnderLoad fails over with --reverse while a client writes to
// the source, moves the client to the new primary, whose writes reach the
// old source through the reverse link, fails back with --reverse again,
// and moves the client back: every order any client saw committed is on
// both sides, the two sides hold the same rows, the sequences go on with
// no duplicate key, and the old source took no write but the link's
// while it was the reverse link's target.
func TestFailbackUnderLoad(t *testing.T) {
	f := newFixture(t, "fb")
	f.startLink()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	w1, done1 := f.startWriter(ctx)
	p, err := Build(Options{Name: "fb", Source: f.source, Target: f.target, Kind: Planned, Validate: true,
		Reverse: true, MaxLag: 30 * time.Second, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := runLogged(ctx, t, p); err != nil {
		t.Fatalf("failover with --reverse: %v\n%+v", err, res)
	}
	<-done1
	if n := missingOrders(t, f.target, w1); n != 0 {
		t.Fatalf("%d orders committed on the source are not on the target", n)
	}

	// A schema change, and a partition's TRUNCATE, on the new primary
	// before the reverse link first runs are carried to the old source all
	// the same.
	if err := pgtest.ExecOn(f.target, `ALTER TABLE notes ADD COLUMN tag text DEFAULT 'new'`,
		`INSERT INTO notes (body, tag) VALUES ('after the failover', 'x')`, `TRUNCATE events_old`); err != nil {
		t.Fatal(err)
	}

	// The reverse link runs from the new primary into the old source.
	back := runLink(t, "fb_back", f.target, f.source)
	f.waitFor("the reverse link replicating", time.Minute, func() bool {
		return queryString(f.source, `SELECT phase FROM pglink.links WHERE name = 'fb_back'`) == "replicating"
	})
	w2, done2 := f.startWriterOn(ctx, f.target)
	f.waitFor("the new primary's orders on the old source", time.Minute, func() bool {
		return missingOrders(t, f.source, w2) == 0
	})
	f.waitFor("the new primary's schema change on the old source", time.Minute, func() bool {
		return queryString(f.source, `SELECT tag FROM notes WHERE body = 'after the failover'`) == "x"
	})
	if n := queryString(f.source, `SELECT count(*)::text FROM events_old`); n != "0" {
		t.Fatalf("the partition truncated on the new primary holds %s rows on the old source", n)
	}
	if err := pgtest.ExecOn(f.source, `SET default_transaction_read_only = off`, `INSERT INTO accounts (owner) VALUES ('stray')`); err == nil {
		t.Fatal("the old source took a write that is not the reverse link's")
	}

	// Fail back, with --reverse again: the first link comes back.
	p, err = Build(Options{Name: "fb_back", Source: f.target, Target: f.source, Kind: Planned, Validate: true,
		Reverse: true, MaxLag: 30 * time.Second, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := runLogged(ctx, t, p); err != nil {
		t.Fatalf("failback: %v\n%+v", err, res)
	}
	<-done2
	select {
	case err := <-back:
		back <- err
		if err != nil {
			t.Fatalf("the reverse link ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the reverse link still runs after the failback")
	}
	for _, w := range []*writer{w1, w2} {
		if n := missingOrders(t, f.source, w); n != 0 {
			t.Fatalf("%d committed orders are not on the old source after the failback", n)
		}
	}

	runLink(t, "fb", f.source, f.target)
	f.waitFor("the link replicating again", time.Minute, func() bool {
		return f.targetString(`SELECT phase FROM pglink.links WHERE name = 'fb'`) == "replicating"
	})
	w3, done3 := f.startWriterOn(ctx, f.source)
	f.waitFor("the source's orders on the target again", time.Minute, func() bool {
		return missingOrders(t, f.target, w3) == 0
	})
	stop()
	<-done3
	if w3.stopErr != nil && !strings.Contains(w3.stopErr.Error(), "context canceled") {
		t.Fatalf("the writer on the source after the failback: %v", w3.stopErr)
	}
	f.waitFor("the last orders on the target", time.Minute, func() bool { return missingOrders(t, f.target, w3) == 0 })
	f.assertSame()
	t.Logf("orders: %d on the source, then %d on the new primary, then %d on the source again", w1.count(), w2.count(), w3.count())
}

// TestReverseRefusedWithoutLogicalWAL refuses --reverse when the target
// cannot decode its WAL, before anything changes.
func TestReverseRefusedWithoutLogicalWAL(t *testing.T) {
	f := &fixture{t: t, name: "nowal"}
	f.src = pgtest.Start(t, pgtest.Options{})
	f.dst = pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_level": "replica"}})
	f.src.CreateDB("app")
	f.src.Exec("app", `CREATE TABLE accounts (id serial PRIMARY KEY, owner text NOT NULL)`,
		`INSERT INTO accounts (owner) SELECT 'o' || g FROM generate_series(1, 100) g`)
	f.source, f.target = f.src.URL("app"), f.dst.URL("app")
	f.startLink()
	p, err := Build(Options{Name: "nowal", Source: f.source, Target: f.target, Kind: Planned, Reverse: true, MaxLag: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "wal_level is replica") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("--reverse into a target without logical WAL: %v", err)
	}
	f.assertWritableAndLinked(t)
	if n := queryString(f.target, `SELECT count(*)::text FROM pg_replication_slots`); n != "0" {
		t.Fatalf("slots on the target: %s", n)
	}
	if _, err := Build(Options{Name: strings.Repeat("x", 40), Source: f.source, Target: f.target, Kind: Planned, Reverse: true}); err == nil {
		t.Fatal("a reverse name over the limit was accepted")
	}
	if _, err := Build(Options{Name: "nowal", Source: f.source, Target: f.target, Kind: Forced, Reverse: true}); err == nil {
		t.Fatal("--reverse with --forced was accepted")
	}
	for name, want := range map[string]string{"shop": "shop_back", "shop_back": "shop", "_back": "_back_back"} {
		if got := state.ReverseName(name); got != want {
			t.Errorf("ReverseName(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestDropReverseKeepsSourceFenced drops a reverse link: the old source
// stays fenced (its linked tables refuse writes again, the rest never
// stopped refusing), the target keeps no slot, and release-source then
// makes the old source writable.
func TestDropReverseKeepsSourceFenced(t *testing.T) {
	f := newFixture(t, "dr")
	f.startLink()
	p, err := Build(Options{Name: "dr", Source: f.source, Target: f.target, Kind: Planned, Reverse: true, MaxLag: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := runLogged(context.Background(), t, p); err != nil {
		t.Fatalf("failover with --reverse: %v\n%+v", err, res)
	}
	said, err := Drop(context.Background(), "dr_back", f.target, f.source, false, nil)
	if err != nil {
		t.Fatalf("drop the reverse link: %v", err)
	}
	t.Logf("drop: %s", said)
	for _, table := range []string{"accounts", "orders", "notes"} {
		err := pgtest.ExecOn(f.source, `SET default_transaction_read_only = off`, `DELETE FROM `+table+` WHERE false`)
		if err == nil || !strings.Contains(err.Error(), "fenced") {
			t.Errorf("table %s of the old source after the drop: %v", table, err)
		}
	}
	if n := queryString(f.target, `SELECT count(*)::text FROM pg_replication_slots`); n != "0" {
		t.Fatalf("slots left on the target: %s", n)
	}
	if ok := queryString(f.source, `SELECT (to_regclass('pglink.links') IS NULL)::text`); ok != "true" {
		t.Errorf("the reverse link's state is left on the old source")
	}
	if err := ReleaseSource(context.Background(), f.source); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.ExecOn(f.source, `INSERT INTO accounts (owner) VALUES ('released')`); err != nil {
		t.Fatalf("the released old source refuses writes: %v", err)
	}
}
