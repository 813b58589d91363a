package failover

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.RemovePglinkBinary()
	os.Exit(code)
}

// TestKillPlannedFailover kills a pglink failover process with SIGKILL at
// a different moment of each run, under a writing client, then runs the
// same failover again: it must end with the link failed over, every order
// the client saw committed on the target, the two sides the same row by
// row, the source fenced and no slot left, wherever the kill landed.
func TestKillPlannedFailover(t *testing.T) {
	bin := pgtest.PglinkBinary(t)
	for i, delay := range []time.Duration{50 * time.Millisecond, 150 * time.Millisecond, 250 * time.Millisecond,
		400 * time.Millisecond, 600 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			name := fmt.Sprintf("kill%d", i)
			f := newFixture(t, name)
			f.startLink()
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			w, wdone := f.startWriter(ctx)
			f.killThenFailover(t, bin, delay, stop, wdone)
			if w.stopErr == nil || strings.Contains(w.stopErr.Error(), "context canceled") {
				w.stopErr = fmt.Errorf("fenced") // stopped by the test, not by the fence: assertFailedOver need not see the fence's error
			}
			f.assertFailedOver(t, w, false)
		})
	}
}

// TestKillFailoverReverse kills a pglink failover --reverse with SIGKILL
// at a different moment of each run, under a writing client, then runs
// the same failover again: the link must end failed over with its reverse
// link in place (recorded on the source, its slot on the target and no
// slot left on the source), and the reverse link must carry a write on the
// new primary to the old source.
func TestKillFailoverReverse(t *testing.T) {
	bin := pgtest.PglinkBinary(t)
	for i, delay := range []time.Duration{200 * time.Millisecond, 450 * time.Millisecond, 700 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			name := fmt.Sprintf("rkill%d", i)
			f := newFixture(t, name)
			f.startLink()
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			w, wdone := f.startWriter(ctx)
			f.killThenFailover(t, bin, delay, stop, wdone, "--reverse")
			if n := missingOrders(t, f.target, w); n != 0 {
				t.Fatalf("%d committed orders are not on the target", n)
			}
			rev := name + "_back"
			if ph := queryString(f.source, `SELECT phase FROM pglink.links WHERE name = $1`, rev); ph != "replicating" {
				t.Fatalf("the reverse link on the source: %q", ph)
			}
			if n := queryString(f.target, `SELECT string_agg(slot_name, ',') FROM pg_replication_slots`); n != "pglink_"+rev {
				t.Fatalf("slots on the target: %q", n)
			}
			if n := queryString(f.source, `SELECT count(*)::text FROM pg_replication_slots`); n != "0" {
				t.Fatalf("slots left on the source: %s", n)
			}
			runLink(t, rev, f.target, f.source)
			if err := pgtest.ExecOn(f.target, `INSERT INTO accounts (owner) VALUES ('after the failover')`); err != nil {
				t.Fatalf("the new primary refuses writes: %v", err)
			}
			f.waitFor("the new primary's write on the old source", time.Minute, func() bool {
				return queryString(f.source, `SELECT owner FROM accounts WHERE owner = 'after the failover'`) != ""
			})
			f.assertSame()
		})
	}
}

// killThenFailover starts pglink failover --planned (with args) under the
// writer that stop ends, kills it with SIGKILL after delay, and runs the
// same failover again, which must finish or redo the killed one; the
// killed one may have ended before the kill, and the next one then has
// nothing to do.
func (f *fixture) killThenFailover(t *testing.T, bin string, delay time.Duration, stop func(), wdone chan struct{}, args ...string) {
	t.Helper()
	failover := func() *exec.Cmd {
		cmd := exec.Command(bin, append([]string{"failover", "--name", f.name, "--planned", "--yes", "--max-lag", "30s", "--timeout", "1m"}, args...)...)
		cmd.Env = append(os.Environ(), "PGLINK_SOURCE="+f.source, "PGLINK_TARGET="+f.target)
		return cmd
	}
	first := failover()
	var out bytes.Buffer
	first.Stdout, first.Stderr = &out, &out
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay)
	first.Process.Kill()
	first.Wait()
	t.Logf("killed after %s; its output:\n%s", delay, out.String())
	stop() // the writer stops here, if the fence has not stopped it
	<-wdone

	step := f.targetString(`SELECT phase || ' ' || coalesce(failover_step, '') FROM pglink.links WHERE name = $1`, f.name)
	out2, err := failover().CombinedOutput()
	t.Logf("after the kill the link was %q; the next failover: %v\n%s", step, err, out2)
	if err != nil && !(step == "failed_over done" && strings.Contains(string(out2), "failed over already")) {
		t.Fatalf("the failover after the kill: %v", err)
	}
}
