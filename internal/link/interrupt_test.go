package link

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
)

// Ctrl-C at any moment of a start, from the first milliseconds on, stops
// pglink start within seconds; pglink drop then removes everything it made.
func TestInterruptAtAnyMoment(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("bank")
	bankFixture(src, "bank", 20000)
	source := src.URL("bank")
	for i, delay := range []time.Duration{0, 10 * time.Millisecond, 30 * time.Millisecond, 60 * time.Millisecond,
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond} {
		name := fmt.Sprintf("intr%d", i)
		target := dst.URL(name) // pglink creates it: each start begins from an empty target
		p := startProcess(t, name, source, target)
		time.Sleep(delay)
		p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			t.Fatalf("SIGINT %s after the start: pglink start still runs 15 s later; output:\n%s", delay, p.out.String())
		}
		st := p.cmd.ProcessState
		killed := !st.Exited() && st.Sys().(syscall.WaitStatus).Signal() == syscall.SIGINT // before Go's handler was set
		if code := st.ExitCode(); code != 0 && code != 130 && !killed {
			t.Errorf("SIGINT %s after the start: exit code %d, want 0 or 130; output:\n%s", delay, code, p.out.String())
		}
		if out := p.out.String(); st.ExitCode() == 130 && (!contains(out, "interrupted") || contains(out, "CREATEDB")) {
			t.Errorf("SIGINT %s after the start: the error should say it was interrupted, and give no other remedy:\n%s", delay, out)
		}
		drop := exec.Command(pglinkBinary(t), "drop", "--name", name)
		drop.Env = append(os.Environ(), "PGLINK_SOURCE="+source, "PGLINK_TARGET="+target)
		out, err := drop.CombinedOutput()
		if err != nil && !contains(string(out), "does not exist") { // a start stopped before it made the target database
			t.Errorf("SIGINT %s after the start: pglink drop: %v\n%s", delay, err, out)
		}
		t.Logf("SIGINT %s after the start: %s\n%s\npglink drop: %v %s", delay, st, p.out.String(), err, out)
		if n := count(t, src, "bank", `SELECT count(*) FROM pg_replication_slots`); n != "0" {
			t.Fatalf("SIGINT %s after the start, then drop: %s replication slots left on the source", delay, n)
		}
		if n := count(t, src, "bank", `SELECT count(*) FROM pg_publication`); n != "0" {
			t.Fatalf("SIGINT %s after the start, then drop: %s publications left on the source", delay, n)
		}
	}
}

// A hang-up (the terminal or SSH session of pglink start closed) stops
// the link as Ctrl-C does, instead of killing it: the process says it
// stopped and exits, and the next start resumes with nothing lost.
func TestHangupStopsCleanly(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("bank")
	bankFixture(src, "bank", 2000)
	source, target := src.URL("bank"), dst.URL("bank")
	replicating := func(p *process) func() (bool, error) {
		return func() (bool, error) {
			if gone, out := p.exited(); gone {
				return false, fmt.Errorf("pglink exited: %s", out)
			}
			var phase string
			err := execQueryString(dst, "bank", `SELECT phase FROM pglink.links WHERE name = 'hangup'`, &phase)
			return err == nil && phase == "replicating", nil
		}
	}
	p := startProcess(t, "hangup", source, target)
	waitFor(t, "replicating", 2*time.Minute, nil, replicating(p))
	src.Exec("bank", `INSERT INTO bank.ledger (id, amount) SELECT g, g FROM generate_series(1, 500) g`)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("SIGHUP: pglink start still runs 15 s later; output:\n%s", p.out.String())
	}
	st := p.cmd.ProcessState
	if !st.Exited() || !contains(p.out.String(), "link stopped") {
		t.Fatalf("SIGHUP: %s, want a clean stop (\"link stopped\"); output:\n%s", st, p.out.String())
	}
	src.Exec("bank", `INSERT INTO bank.ledger (id, amount) SELECT g, -g FROM generate_series(501, 1000) g`)
	p = startProcess(t, "hangup", source, target)
	waitFor(t, "replicating again", time.Minute, nil, replicating(p))
	l := &testLink{t: t, cfg: Config{Name: "hangup", Target: target}}
	waitCaughtUp(t, l, src, "bank", time.Minute)
	assertSame(t, src, dst, "bank", "bank")
	p.kill()
	if err := state.Drop(context.Background(), "hangup", source, target, nil); err != nil {
		t.Fatalf("drop: %v", err)
	}
}
