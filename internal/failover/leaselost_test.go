package failover

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestFailoverLeaseLost ends the session of a planned failover's lease
// (as a target restart does) after the failover fenced the source. The
// failover must stop at once and undo nothing, as if it had died there:
// another failover may have taken the link over meanwhile. The next
// failover then undoes it and completes.
func TestFailoverLeaseLost(t *testing.T) {
	f := newFixture(t, "flost")
	f.startLink()
	opts := Options{Name: "flost", Source: f.source, Target: f.target, Kind: Planned, MaxLag: 30 * time.Second}
	failStep = func(id string) error {
		if id == "fence" {
			// The failover's lease is the newer of the two advisory locks
			// on the target; the link's process holds the other.
			if err := pgtest.ExecOn(f.target, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN (
				SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
				ORDER BY backend_start DESC LIMIT 1`); err != nil {
				t.Errorf("end the failover lease's session: %v", err)
			}
			time.Sleep(time.Second) // the failover notices within moments
		}
		return nil
	}
	defer func() { failStep = nil }()
	p, _ := Build(opts)
	if _, err := runLogged(context.Background(), t, p); err == nil || !strings.Contains(err.Error(), "lost the failover lease") {
		t.Fatalf("the failover should have stopped for its lost lease: %v", err)
	}
	f.assertInterrupted(t)
	if err := pgtest.ExecOn(f.source, `INSERT INTO accounts (owner) VALUES ('after the lease was lost')`); err == nil {
		t.Fatal("the failover undid its fence after it lost its lease")
	}

	failStep = nil
	p, _ = Build(opts)
	res, err := runLogged(context.Background(), t, p)
	if err != nil {
		t.Fatalf("the next failover: %v", err)
	}
	if d := res.Steps[0].Detail; !strings.Contains(d, "interrupted failover was undone") {
		t.Errorf("its first step should say it undid the interrupted one: %q", d)
	}
	if ph := f.targetString(`SELECT phase FROM pglink.links WHERE name = $1`, f.name); ph != "failed_over" {
		t.Errorf("phase after the next failover: %q", ph)
	}
	f.assertSame()
}
