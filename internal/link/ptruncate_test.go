package link

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
)

// partitionWriteLoad inserts into every partition of public.ev (k 1 to 4;
// 4 has no partition until the test makes one) until stop is closed.
func partitionWriteLoad(t *testing.T, src *pgtest.Cluster, stop <-chan struct{}, wg *sync.WaitGroup, writes *atomic.Int64) {
	loopWrites(t, src, stop, wg, writes, func(ctx context.Context, conn *pgx.Conn, i int) error {
		_, err := conn.Exec(ctx, `INSERT INTO public.ev (k, v) SELECT k, $1 FROM generate_series(1, 3) k`, fmt.Sprintf("load %d", i))
		return err
	})
}

// TestPartitionTruncateCarried truncates single partitions of a linked
// partitioned table on the source while a client writes to them (a leaf,
// an intermediate partition, a truncate between inserts in one
// transaction, the root, and a partition made while linked, which gets
// its trigger at the next start), and checks that the target has the same
// rows; that the seeding's schema copy did not give the target pglink's
// trigger; and that pglink drop leaves no trigger or function behind.
func TestPartitionTruncateCarried(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.ev (id bigserial, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k)`,
		`CREATE TABLE public.ev_1 PARTITION OF public.ev FOR VALUES IN (1) PARTITION BY RANGE (id)`,
		`CREATE TABLE public.ev_1a PARTITION OF public.ev_1 FOR VALUES FROM (0) TO (1000000000)`,
		`CREATE TABLE public.ev_2 PARTITION OF public.ev FOR VALUES IN (2)`,
		`CREATE TABLE public.ev_3 PARTITION OF public.ev FOR VALUES IN (3)`,
		`INSERT INTO public.ev (k, v) SELECT 1 + g % 3, 'seeded ' || g FROM generate_series(1, 600) g`)
	cfg := Config{Name: "ptrunc", Source: src.URL("app"), Target: dst.URL("app")}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)
	const triggersSQL = `SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pglink\_truncate\_%'`
	if got := count(t, src, "app", triggersSQL); got != "4" {
		t.Fatalf("the source has %s truncate triggers, want 4 (ev_1, ev_1a, ev_2, ev_3)", got)
	}
	if got := count(t, dst, "app", triggersSQL); got != "0" {
		t.Fatalf("the seeding's schema copy gave the target %s of pglink's truncate triggers", got)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	partitionWriteLoad(t, src, stop, &wg, &writes)
	steps := []struct {
		sql     string
		restart bool
	}{
		{sql: `TRUNCATE public.ev_2`},
		{sql: `BEGIN; INSERT INTO public.ev_3 (k, v) VALUES (3, 'before');
			TRUNCATE public.ev_3;
			INSERT INTO public.ev_3 (k, v) VALUES (3, 'after'); COMMIT`},
		{sql: `TRUNCATE public.ev_1`},
		{sql: `BEGIN; TRUNCATE public.ev; INSERT INTO public.ev (k, v) VALUES (1, 'after root'), (2, 'after root'); COMMIT`},
		{sql: `CREATE TABLE public.ev_4 PARTITION OF public.ev FOR VALUES IN (4)`, restart: true},
		{sql: `INSERT INTO public.ev (k, v) SELECT 4, 'four ' || g FROM generate_series(1, 50) g`},
		{sql: `BEGIN; TRUNCATE public.ev_4, public.ev_1a; INSERT INTO public.ev (k, v) VALUES (4, 'after four'); COMMIT`},
	}
	for i, s := range steps {
		before := writes.Load()
		src.Exec("app", s.sql)
		if s.restart {
			if err := l.stop(); err != nil {
				t.Fatalf("step %d: stop: %v", i, err)
			}
			l = startTestLink(t, cfg)
		}
		waitCaughtUp(t, l, src, "app", time.Minute)
		waitFor(t, "more writes", 10*time.Second, l, func() (bool, error) { return writes.Load() > before+5, nil })
	}
	close(stop)
	wg.Wait()
	waitCaughtUp(t, l, src, "app", time.Minute)
	assertSame(t, src, dst, "app", "app")
	if got := count(t, dst, "app", `SELECT count(*) FROM public.ev WHERE v IN ('before', 'after', 'after root', 'after four')`); got != "2" {
		t.Fatalf("the target has %s of the rows written around the truncates, want 2 (after root in ev_2, after four)", got)
	}
	if got := count(t, src, "app", triggersSQL); got != "5" {
		t.Fatalf("the source has %s truncate triggers after a restart, want 5 (ev_4's added)", got)
	}

	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	if err := state.Drop(context.Background(), cfg.Name, cfg.Source, cfg.Target, nil); err != nil {
		t.Fatal(err)
	}
	if got := count(t, src, "app", triggersSQL+` OR EXISTS (SELECT 1 FROM pg_proc WHERE proname LIKE 'truncate\_%')`); got != "0" {
		t.Fatalf("pglink drop left %s truncate triggers (or their function) on the source", got)
	}
}
