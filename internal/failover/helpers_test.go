package failover

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/compare"
	"github.com/pglink/pglink/internal/link"
	"github.com/pglink/pglink/internal/pgtest"
)

// fixture is a source with a few tables of the kinds a failover must get
// right (serial and identity keys, a partitioned table, a keyless table),
// linked into a target by a link run in the test process.
type fixture struct {
	t        *testing.T
	src, dst *pgtest.Cluster
	source   string
	target   string
	name     string
	cancel   context.CancelFunc
	done     chan error
}

func newFixture(t *testing.T, name string) *fixture {
	t.Helper()
	f := &fixture{t: t, name: name}
	f.src = pgtest.Start(t, pgtest.Options{})
	f.dst = pgtest.Start(t, pgtest.Options{})
	f.src.CreateDB("app")
	f.src.Exec("app",
		`CREATE TABLE accounts (id serial PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL DEFAULT 0)`,
		`CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account int NOT NULL, amount numeric NOT NULL, at timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE events (id bigserial, at date NOT NULL, what text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`,
		`CREATE TABLE events_old PARTITION OF events FOR VALUES FROM ('2000-01-01') TO ('2026-01-01')`,
		`CREATE TABLE events_new PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2100-01-01')`,
		`CREATE TABLE notes (body text)`,
		`ALTER TABLE notes REPLICA IDENTITY FULL`,
		`INSERT INTO accounts (owner, balance) SELECT 'owner ' || g, g FROM generate_series(1, 500) g`,
		`INSERT INTO orders (account, amount) SELECT 1 + g % 500, g / 7.0 FROM generate_series(1, 5000) g`,
		`INSERT INTO events (at, what) SELECT date '2025-06-01' + g % 400, 'e' || g FROM generate_series(1, 2000) g`,
		`INSERT INTO notes SELECT 'note ' || (g % 10) FROM generate_series(1, 100) g`)
	f.source, f.target = f.src.URL("app"), f.dst.URL("app")
	return f
}

// startLink runs the link in the test process until it fails over or the
// test ends.
func (f *fixture) startLink() {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	cfg := link.Config{Name: f.name, Source: f.source, Target: f.target, Jobs: 2,
		Logger: slog.New(slog.NewTextHandler(pgtest.LogTo(f.t), &slog.HandlerOptions{Level: slog.LevelInfo}))}
	go func() { f.done <- link.Run(ctx, cfg) }()
	f.t.Cleanup(func() {
		cancel()
		select {
		case <-f.done:
		case <-time.After(30 * time.Second):
			f.t.Errorf("link did not stop")
		}
	})
	f.waitFor("the link replicating with a lag reported", 2*time.Minute, func() bool {
		return f.targetString(`SELECT phase || (lag_seconds IS NOT NULL)::text FROM pglink.links WHERE name = $1`, f.name) == "replicatingtrue"
	})
}

// linkEnded waits for the link run by the test to end by itself.
func (f *fixture) linkEnded(within time.Duration) error {
	select {
	case err := <-f.done:
		f.done <- err
		return err
	case <-time.After(within):
		return errors.New("the link is still running")
	}
}

func (f *fixture) waitFor(what string, timeout time.Duration, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("wait for %s: still not there after %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// targetString runs a query on a fresh target session; "" on error.
func (f *fixture) targetString(sql string, args ...any) string {
	return queryString(f.target, sql, args...)
}

func queryString(url, sql string, args ...any) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return ""
	}
	defer conn.Close(ctx)
	var s *string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&s); err != nil || s == nil {
		return ""
	}
	return *s
}

// assertSame compares every table of source and target row by row.
func (f *fixture) assertSame() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := pgx.Connect(ctx, f.source)
	if err != nil {
		f.t.Fatal(err)
	}
	defer s.Close(ctx)
	d, err := pgx.Connect(ctx, f.target)
	if err != nil {
		f.t.Fatal(err)
	}
	defer d.Close(ctx)
	res, err := compare.Databases(ctx, s, d)
	if err != nil {
		f.t.Fatalf("compare: %v", err)
	}
	if !res.Equal() || res.Rows == 0 {
		f.t.Fatalf("source and target differ:\n%s", res.String())
	}
}

// writer commits orders on the source until it is refused, and remembers
// every id whose commit it saw succeed.
type writer struct {
	mu        sync.Mutex
	committed []int64
	stopErr   error
}

func (w *writer) run(ctx context.Context, url string) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		w.stopErr = err
		return
	}
	defer conn.Close(context.Background())
	for i := 0; ctx.Err() == nil; i++ {
		var id int64
		err := conn.QueryRow(ctx, `WITH o AS (INSERT INTO orders (account, amount) VALUES (1 + $1::int % 500, $1::int) RETURNING id),
			a AS (UPDATE accounts SET balance = balance + 1 WHERE id = 1 + $1::int % 500)
			SELECT id FROM o`, i).Scan(&id)
		if err != nil {
			w.mu.Lock()
			w.stopErr = err
			w.mu.Unlock()
			return
		}
		w.mu.Lock()
		w.committed = append(w.committed, id)
		w.mu.Unlock()
	}
}

// startWriter starts a writer on the source and waits until it has
// committed a few hundred orders; done closes when the writer stops.
func (f *fixture) startWriter(ctx context.Context) (w *writer, done chan struct{}) {
	f.t.Helper()
	w, done = &writer{}, make(chan struct{})
	go func() { w.run(ctx, f.source); close(done) }()
	f.waitFor("the writer under way", time.Minute, func() bool { return w.count() > 300 })
	return w, done
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.committed)
}

// assertFailedOver checks what a planned failover under w's load must
// leave: the writer stopped by the fence, the link's process ended, every
// order w saw committed on the target, both sides the same row by row,
// the source refusing writes from every kind of session, the target taking
// them with its sequences past the source's, no slot left on the source
// and the link failed over, or with cleaned (--cleanup) its publication,
// origin and state gone.
func (f *fixture) assertFailedOver(t *testing.T, w *writer, cleaned bool) {
	t.Helper()
	t.Logf("writer committed %d orders, then: %v", w.count(), w.stopErr)
	if w.stopErr == nil || !strings.Contains(w.stopErr.Error(), "terminat") && !strings.Contains(w.stopErr.Error(), "read-only") && !strings.Contains(w.stopErr.Error(), "fenced") {
		t.Errorf("the writer should have been stopped by the fence, got %v", w.stopErr)
	}
	if err := f.linkEnded(30 * time.Second); err != nil {
		t.Errorf("the link's process should stop after the failover: %v", err)
	}

	// Every order the client saw committed is on the target, and the two
	// sides are the same row by row.
	w.mu.Lock()
	ids := w.committed
	w.mu.Unlock()
	onTarget := f.targetString(`SELECT count(*)::text FROM orders WHERE id = ANY($1)`, ids)
	if onTarget != strconv.Itoa(len(ids)) {
		t.Fatalf("%s of the %d committed orders are on the target", onTarget, len(ids))
	}
	f.assertSame()

	// The source refuses writes, from every kind of session.
	for _, sqls := range [][]string{
		{`INSERT INTO accounts (owner) VALUES ('late')`},
		{`SET default_transaction_read_only = off`, `INSERT INTO accounts (owner) VALUES ('late')`},
		{`SET default_transaction_read_only = off`, `SET session_replication_role = replica`, `DELETE FROM events WHERE false`},
		{`SET default_transaction_read_only = off`, `TRUNCATE notes`},
		{`BEGIN READ WRITE`, `UPDATE events_new SET what = 'x'`},
	} {
		if err := pgtest.ExecOn(f.source, sqls...); err == nil {
			t.Errorf("the source took a write: %v", sqls)
		}
	}
	// The target takes writes, and its sequences go on past the source's.
	if err := pgtest.ExecOn(f.target, `INSERT INTO accounts (owner) VALUES ('after')`, `INSERT INTO orders (account, amount) VALUES (1, 1)`,
		`INSERT INTO events (at, what) VALUES ('2026-02-02', 'after')`, `DELETE FROM notes WHERE body = 'note 1'`); err != nil {
		t.Fatalf("the target refuses writes after the failover: %v", err)
	}
	for _, q := range []string{`SELECT max(id)::text FROM accounts`, `SELECT max(id)::text FROM orders`, `SELECT max(id)::text FROM events`} {
		srcMax, _ := strconv.ParseInt(queryString(f.source, q), 10, 64)
		dstMax, _ := strconv.ParseInt(f.targetString(q), 10, 64)
		if dstMax <= srcMax {
			t.Errorf("%s: target %d, source %d: the target's sequence did not go on past the source's", q, dstMax, srcMax)
		}
	}
	if n := queryString(f.source, `SELECT count(*)::text FROM pg_replication_slots`); n != "0" {
		t.Errorf("%s replication slots left on the source", n)
	}
	if n := queryString(f.source, `SELECT count(*)::text FROM pg_trigger WHERE tgname LIKE 'pglink\_truncate\_%'`); n != "0" {
		t.Errorf("%s of the link's truncate triggers left on the source after the cut", n)
	}
	if cleaned {
		left := f.targetString(`SELECT concat_ws(', ',
			(SELECT 'origin' FROM pg_replication_origin WHERE roname IN ('pglink_' || $1, 'pglink_' || $1 || '.2') LIMIT 1),
			(SELECT 'schema pglink' FROM pg_namespace WHERE nspname = 'pglink'))`, f.name)
		if pub := queryString(f.source, `SELECT pubname::text FROM pg_publication`); pub != "" {
			left += " publication " + pub
		}
		if left != "" {
			t.Errorf("left after --cleanup: %s", left)
		}
	} else if ph := f.targetString(`SELECT phase FROM pglink.links WHERE name = $1`, f.name); ph != "failed_over" {
		t.Errorf("phase after failover: %q", ph)
	}

}

// runLogged runs plan p and logs its results table.
func runLogged(ctx context.Context, t *testing.T, p *Plan) (*Result, error) {
	t.Helper()
	res, err := Run(ctx, p)
	var out strings.Builder
	res.WriteTable(&out)
	t.Logf("results:\n%s", out.String())
	return res, err
}
