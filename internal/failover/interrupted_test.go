package failover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/status"
)

// runCrashing runs a failover that dies right after step crash ran,
// undoing nothing, as a killed process would.
func runCrashing(t *testing.T, o Options, crash string) {
	t.Helper()
	crashAfter = func(id string) bool { return id == crash }
	defer func() { crashAfter = nil }()
	p, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), p); !errors.Is(err, errCrashed) {
		t.Fatalf("the failover should have died after step %s: %v", crash, err)
	}
}

// assertInterrupted checks what a failover that died leaves: the link
// failing over, and status saying so with the remedy.
func (f *fixture) assertInterrupted(t *testing.T) { f.assertInterruptedIn(t, "failing_over") }

// assertInterruptedIn is assertInterrupted for a failover that died in
// phase.
func (f *fixture) assertInterruptedIn(t *testing.T, phase string) {
	t.Helper()
	if ph := f.targetString(`SELECT phase FROM pglink.links WHERE name = $1`, f.name); ph != phase {
		t.Fatalf("phase after the failover died: %q", ph)
	}
	// The dead failover's server session may outlive it by a moment, and
	// its lease with it.
	var st *report.Status
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var err error
		if st, err = status.Read(context.Background(), f.name, f.target, f.source); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(st.LastError, "interrupted") || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(st.LastError, "interrupted") || !strings.Contains(st.Remedy, "pglink failover") {
		t.Errorf("status should say the failover was interrupted, and what to do: %q / %q", st.LastError, st.Remedy)
	}
}

// TestPlannedFailoverInterrupted kills a planned failover after each step
// before the target opens: the source stays fenced and the link failing
// over until the next failover, which undoes that first and then runs (here
// it is made to fail at its sequences step, so that its own undo leaves
// the link replicating for the next case). A failover killed once the
// target began to take writes is finished by the next one, with nothing
// lost: every order the client saw committed is on the target.
func TestPlannedFailoverInterrupted(t *testing.T) {
	f := newFixture(t, "intr")
	f.startLink()
	opts := Options{Name: "intr", Source: f.source, Target: f.target, Kind: Planned, MaxLag: 30 * time.Second}
	for _, crash := range []string{"preflight", "fence", "catchup", "sequences"} {
		t.Run(crash, func(t *testing.T) {
			runCrashing(t, opts, crash)
			f.assertInterrupted(t)
			if crash != "preflight" {
				if err := pgtest.ExecOn(f.source, `INSERT INTO accounts (owner) VALUES ('while interrupted')`); err == nil {
					t.Fatal("the source took a write after the failover died fenced")
				}
			}

			failStep = func(id string) error {
				if id == "sequences" {
					return fmt.Errorf("injected failure at %s", id)
				}
				return nil
			}
			defer func() { failStep = nil }()
			p, _ := Build(opts)
			res, err := Run(context.Background(), p)
			if err == nil || !strings.Contains(err.Error(), "injected failure") {
				t.Fatalf("the next failover should get to its sequences step: %v", err)
			}
			if d := res.Steps[0].Detail; !strings.Contains(d, "interrupted failover was undone") {
				t.Errorf("its first step should say it undid the interrupted one: %q", d)
			}
			f.assertWritableAndLinked(t)
		})
	}
	t.Run("open", func(t *testing.T) {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		w, wdone := f.startWriter(ctx)
		runCrashing(t, opts, "open")
		f.assertInterrupted(t)
		<-wdone
		p, _ := Build(opts)
		res, err := runLogged(context.Background(), t, p)
		if err != nil {
			t.Fatalf("the failover that finishes the interrupted one: %v", err)
		}
		for _, s := range res.Steps {
			want := StepDone
			if s.ID == "fence" || s.ID == "catchup" || s.ID == "sequences" || s.ID == "matviews" {
				want = StepSkipped
			}
			if s.State != want {
				t.Errorf("step %s: %s, want %s", s.ID, s.State, want)
			}
		}
		if res.EndLSN == "" {
			t.Errorf("the end position of the interrupted failover is not reported: %+v", res)
		}
		f.assertFailedOver(t, w, false)
	})
}

// TestForcedFailoverInterruptedInCut: a forced failover that died after
// it marked the link failed over, before it dropped the slot (the state
// its cut step leaves at that moment), is finished by the next forced
// failover: the slot is dropped, and a planned one is refused with the
// remedy.
func TestForcedFailoverInterruptedInCut(t *testing.T) {
	f := newFixture(t, "fcut")
	f.startLink()
	o := Options{Name: "fcut", Source: f.source, Target: f.target, Kind: Forced}
	runCrashing(t, o, "open")
	if err := pgtest.ExecOn(f.target, `UPDATE pglink.links SET phase = 'failed_over', failover_step = 'cut' WHERE name = 'fcut'`); err != nil {
		t.Fatal(err)
	}
	f.assertInterruptedIn(t, "failed_over")
	p, _ := Build(Options{Name: "fcut", Source: f.source, Target: f.target, Kind: Planned})
	if _, err := Run(context.Background(), p); err == nil || !strings.Contains(err.Error(), "pglink failover --forced again") {
		t.Errorf("a planned failover after a forced one interrupted in its cut: %v", err)
	}
	p, _ = Build(o)
	if _, err := runLogged(context.Background(), t, p); err != nil {
		t.Fatalf("the forced failover that finishes the cut: %v", err)
	}
	if n := queryString(f.source, `SELECT count(*)::text FROM pg_replication_slots`); n != "0" {
		t.Errorf("%s replication slots left on the source", n)
	}
	if ph := f.targetString(`SELECT phase || ' ' || failover_step FROM pglink.links WHERE name = $1`, f.name); ph != "failed_over done" {
		t.Errorf("the link after the finished cut: %q", ph)
	}
	f.assertSame()
}

// TestFailoverLease refuses a second failover while one runs, and a
// forced failover finishes one that died.
func TestFailoverLease(t *testing.T) {
	f := newFixture(t, "lease")
	f.startLink()
	ctx := context.Background()
	ctl, err := state.OpenControl(ctx, "lease", f.source, f.target)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.TakeFailoverLease(ctx); err != nil {
		t.Fatal(err)
	}
	p, _ := Build(Options{Name: "lease", Source: f.source, Target: f.target, Kind: Planned, MaxLag: 30 * time.Second})
	if _, err := Run(ctx, p); err == nil || !strings.Contains(err.Error(), "another pglink failover") {
		t.Fatalf("a failover while another holds the lease: %v", err)
	}
	if ph := f.targetString(`SELECT phase FROM pglink.links WHERE name = $1`, f.name); ph != "replicating" {
		t.Fatalf("phase after the refused failover: %q", ph)
	}
	ctl.Close(ctx)

	runCrashing(t, Options{Name: "lease", Source: f.source, Target: f.target, Kind: Planned, MaxLag: 30 * time.Second}, "catchup")
	f.assertInterrupted(t)
	p, _ = Build(Options{Name: "lease", Source: f.source, Target: f.target, Kind: Forced})
	if _, err := runLogged(ctx, t, p); err != nil {
		t.Fatalf("a forced failover after an interrupted one: %v", err)
	}
	if err := f.linkEnded(30 * time.Second); err != nil {
		t.Errorf("the link should stop: %v", err)
	}
	if ph := f.targetString(`SELECT phase FROM pglink.links WHERE name = $1`, f.name); ph != "failed_over" {
		t.Errorf("phase after the forced failover: %q", ph)
	}
	// The interrupted failover had caught up exactly, and nothing was
	// written since: the two sides hold the same rows.
	f.assertSame()
	if err := pgtest.ExecOn(f.target, `INSERT INTO accounts (owner) VALUES ('after')`); err != nil {
		t.Fatalf("the target refuses writes: %v", err)
	}
}

// TestScriptFailoverNotTakenOver: a failover run as a script holds no
// lease, so pglink cannot tell a running one from an interrupted one, and
// takes over neither; status says so.
func TestScriptFailoverNotTakenOver(t *testing.T) {
	for _, kind := range []string{Planned, Forced} {
		p, err := Build(Options{Name: "scr", Source: "postgres://s/db", Target: "postgres://t/db", Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		if sc := Script(p); !strings.Contains(sc, "failover_step = 'begin"+state.ScriptMark+"'") {
			t.Errorf("the %s script does not mark its steps as a script's", kind)
		}
	}
	f := newFixture(t, "scr")
	f.startLink()
	if err := pgtest.ExecOn(f.target, `SET default_transaction_read_only = off`, `UPDATE pglink.links SET phase = 'failing_over', failover_kind = 'planned', failover_step = 'begin`+state.ScriptMark+`'`); err != nil {
		t.Fatal(err)
	}
	st, err := status.Read(context.Background(), "scr", f.target, f.source)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.LastError, "failover script") {
		t.Errorf("status should say a failover script runs the link, or was interrupted: %q", st.LastError)
	}
	for _, kind := range []string{Planned, Forced} {
		p, _ := Build(Options{Name: "scr", Source: f.source, Target: f.target, Kind: kind, MaxLag: 30 * time.Second})
		if _, err := Run(context.Background(), p); err == nil || !strings.Contains(err.Error(), "failover script") {
			t.Errorf("a %s failover while a script's runs: %v", kind, err)
		}
	}
	if ph := f.targetString(`SELECT phase || failover_step FROM pglink.links WHERE name = $1`, f.name); ph != "failing_overbegin"+state.ScriptMark {
		t.Errorf("the refused failovers changed the link: %q", ph)
	}
}
