package failover

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPlannedFailoverWaitsForLag holds the link's apply back with a lock
// on the target while a writer keeps committing: a planned failover with
// a short --catch-up-timeout gives up before it fences anything (the
// source takes writes, the link replicates); once the lock is gone, the
// next failover waits, saying the lag, until it falls under --max-lag, and
// then fails over with every committed order on the target.
func TestPlannedFailoverWaitsForLag(t *testing.T) {
	f := newFixture(t, "maxlag")
	f.startLink()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	w, wdone := f.startWriter(ctx)

	lock, err := pgx.Connect(ctx, f.target)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(context.Background())
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE orders IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	f.waitFor("a lag over a second", time.Minute, func() bool {
		return f.targetString(`SELECT (lag_seconds > 1.5)::text FROM pglink.links WHERE name = $1`, f.name) == "true"
	})

	opts := Options{Name: f.name, Source: f.source, Target: f.target, Kind: Planned,
		MaxLag: time.Second, CatchUpTimeout: 2 * time.Second, Timeout: time.Minute}
	p, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = runLogged(ctx, t, p)
	if err == nil || !strings.Contains(err.Error(), "still lags") || !strings.Contains(err.Error(), "--max-lag 1s") {
		t.Fatalf("a failover while the link lags: %v", err)
	}
	if ph := f.targetString(`SELECT phase FROM pglink.links WHERE name = $1`, f.name); ph != "replicating" {
		t.Fatalf("link after the refused failover: %q", ph)
	}
	if n := w.count(); waitCount(w, n+50, 30*time.Second) < n+50 {
		t.Fatal("the source stopped taking writes after the refused failover")
	}

	var mu sync.Mutex
	var waiting []string
	opts.CatchUpTimeout = 2 * time.Minute
	opts.Progress = func(e Event) {
		if e.Step.ID == "preflight" && e.State == StepRunning && e.Detail != "" {
			mu.Lock()
			waiting = append(waiting, e.Detail)
			mu.Unlock()
		}
	}
	p, err = Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(3 * time.Second)
		_ = tx.Rollback(context.Background())
	}()
	if res, err := runLogged(ctx, t, p); err != nil {
		t.Fatalf("failover once the lag falls: %v\n%+v", err, res)
	}
	mu.Lock()
	if len(waiting) == 0 || !strings.Contains(waiting[0], "waiting for it to fall under --max-lag 1s") {
		t.Errorf("the wait for the lag was not reported: %q", waiting)
	}
	mu.Unlock()
	<-wdone
	f.assertFailedOver(t, w, false)
}

// waitCount waits until w has committed n orders, or for at most d, and
// returns how many it has.
func waitCount(w *writer, n int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for w.count() < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	return w.count()
}
