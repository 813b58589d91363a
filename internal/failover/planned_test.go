package failover

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestPlannedFailoverUnderLoad fails over while a client keeps committing:
// every transaction the client saw committed is on the target, the two
// sides hold the same rows, the source refuses writes (also from a session
// that turns read-only off), the target takes them, sequences go on past
// the source's values, and no slot is left.
func TestPlannedFailoverUnderLoad(t *testing.T) {
	f := newFixture(t, "cut")
	f.startLink()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	w, wdone := f.startWriter(ctx)

	var events []string
	p, err := Build(Options{Name: "cut", Source: f.source, Target: f.target, Kind: Planned, Validate: true,
		Timeout: time.Minute, MaxLag: 30 * time.Second,
		Progress: func(e Event) { events = append(events, e.Step.ID+":"+e.State) }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := runLogged(context.Background(), t, p)
	if err != nil {
		t.Fatalf("failover: %v\n%+v", err, res)
	}
	if !res.OK || res.DowntimeSeconds == nil || res.EndLSN == "" {
		t.Fatalf("result incomplete: %+v", res)
	}
	for _, s := range res.Steps {
		if s.State != StepDone {
			t.Errorf("step %s: %s", s.ID, s.State)
		}
	}
	if len(events) != 2*len(p.Steps) {
		t.Errorf("progress events: %v", events)
	}
	<-wdone
	f.assertFailedOver(t, w, false)

	// A second failover is refused, and changes nothing.
	p2, _ := Build(Options{Name: "cut", Source: f.source, Target: f.target, Kind: Planned})
	if _, err := Run(context.Background(), p2); err == nil || !strings.Contains(err.Error(), "failed over already") {
		t.Errorf("a second failover: %v", err)
	}

	// release-source makes the source writable again.
	if err := ReleaseSource(context.Background(), f.source); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.ExecOn(f.source, `INSERT INTO accounts (owner) VALUES ('released')`); err != nil {
		t.Errorf("the released source refuses writes: %v", err)
	}
}

// TestPlannedFailoverUndo makes each step before the target opens fail in
// turn: the source takes writes again, the link goes on replicating, and
// the next failover works.
func TestPlannedFailoverUndo(t *testing.T) {
	f := newFixture(t, "undo")
	f.startLink()
	for _, step := range []string{"preflight", "fence", "catchup", "validate", "sequences", "matviews"} {
		t.Run(step, func(t *testing.T) {
			failStep = func(id string) error {
				if id == step {
					return fmt.Errorf("injected failure at %s", id)
				}
				return nil
			}
			defer func() { failStep = nil }()
			p, err := Build(Options{Name: "undo", Source: f.source, Target: f.target, Kind: Planned, Validate: true, MaxLag: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			res, err := Run(context.Background(), p)
			if err == nil || !strings.Contains(err.Error(), "injected failure") {
				t.Fatalf("failover should fail at %s: %v", step, err)
			}
			if !strings.Contains(res.Undo, "Everything was undone") {
				t.Errorf("undo: %q", res.Undo)
			}
			f.assertWritableAndLinked(t)
		})
	}
	t.Run("timeout", func(t *testing.T) {
		// The link cannot catch up while it is held by a validation-style
		// pause at an earlier point: the catch-up times out.
		p, _ := Build(Options{Name: "undo", Source: f.source, Target: f.target, Kind: Planned, Timeout: time.Nanosecond, MaxLag: 30 * time.Second})
		_, err := Run(context.Background(), p)
		if err == nil || !strings.Contains(err.Error(), "within --timeout") {
			t.Fatalf("failover should time out: %v", err)
		}
		f.assertWritableAndLinked(t)
	})
}

// assertWritableAndLinked checks that the source takes writes and that the
// link replicates them.
func (f *fixture) assertWritableAndLinked(t *testing.T) {
	t.Helper()
	owner := fmt.Sprintf("probe %d", time.Now().UnixNano())
	if err := pgtest.ExecOn(f.source, `INSERT INTO accounts (owner) VALUES ('`+owner+`')`); err != nil {
		t.Fatalf("the source refuses writes after the undo: %v", err)
	}
	f.waitFor("the probe row on the target", time.Minute, func() bool {
		return f.targetString(`SELECT owner FROM accounts WHERE owner = $1`, owner) == owner
	})
	if ph := f.targetString(`SELECT phase || coalesce(pause_state, '') FROM pglink.links WHERE name = $1`, f.name); ph != "replicating" {
		t.Fatalf("link after the undo: %q", ph)
	}
	if err := pgtest.ExecOn(f.target, `INSERT INTO accounts (owner) VALUES ('x')`); err == nil {
		t.Fatal("the target took a write while linked")
	}
}
