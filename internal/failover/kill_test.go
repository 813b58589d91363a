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

			failover := func() *exec.Cmd {
				cmd := exec.Command(bin, "failover", "--name", name, "--planned", "--yes", "--max-lag", "30s", "--timeout", "1m")
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

			// The killed failover may have ended before the kill: the next
			// one then has nothing to do.
			step := f.targetString(`SELECT phase || ' ' || coalesce(failover_step, '') FROM pglink.links WHERE name = $1`, name)
			out2, err := failover().CombinedOutput()
			t.Logf("after the kill the link was %q; the next failover: %v\n%s", step, err, out2)
			if err != nil && !(step == "failed_over done" && strings.Contains(string(out2), "failed over already")) {
				t.Fatalf("the failover after the kill: %v", err)
			}
			if w.stopErr == nil || strings.Contains(w.stopErr.Error(), "context canceled") {
				w.stopErr = fmt.Errorf("fenced") // stopped by the test, not by the fence: assertFailedOver need not see the fence's error
			}
			f.assertFailedOver(t, w, false)
		})
	}
}
