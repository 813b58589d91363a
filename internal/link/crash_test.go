package link

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestTargetCrashDuringBacklog crashes the target server (immediate stop:
// what its WAL buffers held is lost) while the link works through a
// backlog. The source must not have been told that a lost batch was
// applied: after the restart the link applies it again, and source and
// target are the same. A variant of the apply that reported commits as
// applied before their WAL flush failed here 2 times in 3.
func TestTargetCrashDuringBacklog(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	// The target's WAL writer waits its longest between rounds, so commits
	// that did not wait for their flush stay in the WAL buffers, which an
	// immediate stop loses, until a durable commit flushes them.
	dst := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_writer_delay": "10s"}})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id int PRIMARY KEY, v text)`,
		`INSERT INTO public.t SELECT g, 'seeded' FROM generate_series(1, 1000) g`,
		`CREATE PROCEDURE public.backlog(n int) LANGUAGE plpgsql AS $$
		BEGIN
			FOR i IN 1..n LOOP
				INSERT INTO public.t VALUES (1000 + i, 'backlog ' || i);
				UPDATE public.t SET v = 'touched by ' || i WHERE id = 1 + i % 1000;
				COMMIT;
			END LOOP;
		END $$`)
	cfg := Config{Name: "app", Source: src.URL("app"), Target: dst.URL("app")}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}

	const txns = 60000
	src.Exec("app", "CALL public.backlog("+strconv.Itoa(txns)+")")
	l = startTestLink(t, cfg)
	ctx := context.Background()
	// Crash the target three times along the way, each time just after a
	// batch became visible: its WAL may not be written yet.
	for _, tenths := range []int{2, 5, 8} {
		crashAfterRows(ctx, t, l, dst, 1000+txns*tenths/10)
	}
	waitCaughtUp(t, l, src, "app", 3*time.Minute)
	assertSame(t, src, dst, "app", "app")
	if err := l.failed(); err != nil {
		t.Fatalf("link stopped: %v", err)
	}
}

// crashAfterRows stops dst immediately as soon as a new batch shows more
// than rows rows in public.t, then starts it again.
func crashAfterRows(ctx context.Context, t *testing.T, l *testLink, dst *pgtest.Cluster, rows int) {
	t.Helper()
	conn := dst.Connect("app")
	last, seen := -1, 0
	waitFor(t, fmt.Sprintf("more than %d rows on the target", rows), 2*time.Minute, l, func() (bool, error) {
		for range 1000 {
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM public.t").Scan(&seen); err != nil {
				return false, nil // the link's reconnect may still be under way
			}
			if seen > rows && last >= 0 && seen != last {
				return true, nil
			}
			last = seen
		}
		return false, nil
	})
	if err := dst.Stop(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := dst.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("rows on the target before the crash: %d; after recovery: %s", seen, dst.QueryString("app", "SELECT count(*) FROM public.t"))
}
