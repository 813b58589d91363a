package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/status"
)

// TestLeaseKeptThroughTargetLoss restarts the target, and then ends the
// lease's own session, while the link applies a steady write load. The
// process must stop applying when its lease is lost and hold the lease
// again before it goes on: pglink status says it runs, a second start of
// the link is refused, and nothing is lost.
func TestLeaseKeptThroughTargetLoss(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id bigserial PRIMARY KEY, v text)`,
		`INSERT INTO public.t (v) SELECT 'v' || g FROM generate_series(1, 1000) g`)
	cfg := Config{Name: "app", Source: src.URL("app"), Target: dst.URL("app")}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)
	stopLoad := writeLoad(t, src, "app")

	ctx := context.Background()
	if err := dst.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	if err := dst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, l, 15*time.Second)
	refuseSecond(t, cfg, l)

	// The lease's session alone ends: the sessions of the apply, opened
	// before, must go with it, and the lease must be held again.
	var at time.Time
	var ended bool
	if err := dst.Connect("app").QueryRow(ctx, `SELECT now(), pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = 'app')`).Scan(&at, &ended); err != nil || !ended {
		t.Fatalf("end the lease's session: %v", err)
	}
	waitRunning(t, l, 15*time.Second)
	waitFor(t, "the sessions bound to the lost lease to end", 10*time.Second, l, func() (bool, error) {
		// The runner's control session is the one kept.
		n := count(t, dst, "app", fmt.Sprintf(`SELECT count(*) FROM pg_stat_activity WHERE datname = 'app'
			AND application_name = 'pglink' AND backend_start < '%s'`, at.Format(time.RFC3339Nano)))
		return n == "1", nil
	})
	refuseSecond(t, cfg, l)

	if n := stopLoad(); n == 0 {
		t.Fatal("the write load wrote nothing")
	}
	waitCaughtUp(t, l, src, "app", time.Minute)
	assertSame(t, src, dst, "app", "app")
	if err := l.failed(); err != nil {
		t.Fatalf("link stopped: %v", err)
	}
}

// waitRunning waits until pglink status says a process runs the link.
func waitRunning(t *testing.T, l *testLink, timeout time.Duration) {
	t.Helper()
	waitFor(t, "the link's process to hold its lease", timeout, l, func() (bool, error) {
		st, err := status.Read(context.Background(), l.cfg.Name, l.cfg.Target, "")
		return err == nil && st.Running, nil
	})
}

// refuseSecond starts a second process for the running link l: it must be
// refused for the lease, and status must say running all the while.
func refuseSecond(t *testing.T, cfg Config, l *testLink) {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(pgtest.LogTo(t), nil)).With("process", "second")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case err := <-done:
			if !errors.Is(err, state.ErrLeaseHeld) {
				t.Fatalf("second start of the link: %v, want it refused for the lease", err)
			}
			waitRunning(t, l, time.Second)
			return
		case <-deadline:
			cancel()
			t.Fatalf("second start of the link was not refused within 30s (it returned %v when stopped)", <-done)
		case <-time.After(200 * time.Millisecond):
			st := linkStatus(t, cfg.Name, cfg.Target, "")
			if !st.Running {
				t.Fatalf("status says no process runs the link while a second start tries it")
			}
		}
	}
}

// writeLoad inserts rows into public.t of db until the returned function
// is called, which returns how many it inserted.
func writeLoad(t *testing.T, c *pgtest.Cluster, db string) func() int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan error, 1)
	go func() {
		defer conn.Close(context.Background())
		for ctx.Err() == nil {
			if _, err := conn.Exec(ctx, `INSERT INTO public.t (v) VALUES ('load')`); err != nil {
				if ctx.Err() == nil {
					done <- err
					return
				}
				break
			}
			n.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
		done <- nil
	}()
	stopped := false
	stop := func() int64 {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("write load: %v", err)
			}
		}
		return n.Load()
	}
	t.Cleanup(func() { stop() })
	return stop
}
