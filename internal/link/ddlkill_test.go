package link

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
)

// TestDDLKillWhileApplying runs the pglink command, makes a carried schema
// change wait inside the apply's target transaction (a session of the
// test holds a lock on the target table that the ALTER needs), kills
// pglink with SIGKILL while it waits, releases the lock and starts pglink
// again: the change is applied exactly once, and the rows written before,
// during and after it match on both sides.
func TestDDLKillWhileApplying(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id bigserial PRIMARY KEY, v text, n int DEFAULT 1)`,
		`INSERT INTO public.t (v) SELECT 'seeded ' || g FROM generate_series(1, 300) g`)
	source, target := src.URL("app"), dst.URL("app")
	p := startProcess(t, "ddlkill", source, target)
	l := &testLink{t: t, cfg: Config{Name: "ddlkill", Target: target}}
	waitFor(t, "replicating", 2*time.Minute, nil, func() (bool, error) {
		if gone, out := p.exited(); gone {
			return false, fmt.Errorf("pglink exited: %s", out)
		}
		var phase string
		err := execQueryString(dst, "app", `SELECT phase FROM pglink.links WHERE name = 'ddlkill'`, &phase)
		return err == nil && phase == "replicating", nil
	})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	ddlWriteLoad(t, src, stop, &wg, &writes)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	// A reader on the target holds ACCESS SHARE on the table: the apply's
	// rows go on, its ALTER waits.
	ctx := context.Background()
	reader := dst.Connect("app")
	defer reader.Close(ctx)
	if _, err := reader.Exec(ctx, `BEGIN; SELECT count(*) FROM public.t`); err != nil {
		t.Fatal(err)
	}
	src.Exec("app", `ALTER TABLE public.t ADD COLUMN c1 int DEFAULT 7`,
		`INSERT INTO public.t (v, c1) SELECT 'c1 ' || g, g FROM generate_series(1, 20) g`)
	waitFor(t, "the carried ALTER to wait for its lock on the target", time.Minute, nil, func() (bool, error) {
		if gone, out := p.exited(); gone {
			return false, fmt.Errorf("pglink exited: %s", out)
		}
		var n int
		err := execQueryInt(dst, "app", `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
			AND query LIKE 'ALTER TABLE public.t ADD COLUMN c1%'`, &n)
		return err == nil && n == 1, nil
	})
	p.kill()
	if _, err := reader.Exec(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	before := writes.Load()
	p = startProcess(t, "ddlkill", source, target)
	waitCaughtUp(t, l, src, "app", 2*time.Minute)
	src.Exec("app", `UPDATE public.t SET c1 = id WHERE id % 5 = 0`)
	waitFor(t, "more writes", 30*time.Second, nil, func() (bool, error) { return writes.Load() > before+20, nil })
	close(stop)
	wg.Wait()
	waitCaughtUp(t, l, src, "app", 2*time.Minute)

	if got, want := count(t, dst, "app", columnsSQL), count(t, src, "app", columnsSQL); got != want {
		t.Fatalf("columns differ:\nsource %s\ntarget %s", want, got)
	}
	if got := count(t, dst, "app", `SELECT count(*) FROM pglink.history WHERE link = 'ddlkill' AND event = 'ddl_applied'
		AND detail LIKE 'ALTER TABLE public.t ADD COLUMN c1%'`); got != "1" {
		t.Fatalf("pglink.history holds %s records of the ALTER applied, want 1", got)
	}
	assertSame(t, src, dst, "app", "app")
	var phase string
	if err := execQueryString(dst, "app", `SELECT phase FROM pglink.links WHERE name = 'ddlkill'`, &phase); err != nil || phase != "replicating" {
		t.Fatalf("phase %q (%v)\n%s", phase, err, p.out.String())
	}
	p.kill()
	if err := state.Drop(ctx, "ddlkill", source, target, nil); err != nil {
		t.Fatalf("drop: %v", err)
	}
}
