package failover

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// TestPlannedFailoverIdle fails over a link that is caught up and whose
// source is quiet, several times in a row (undoing each but the last). The
// end mark then reaches the link within milliseconds; the link must still
// hold before it, never apply it, and the failover must succeed.
func TestPlannedFailoverIdle(t *testing.T) {
	f := newFixture(t, "idle")
	f.startLink()
	for i := 0; i < 3; i++ {
		f.assertWritableAndLinked(t)
		time.Sleep(300 * time.Millisecond) // let the link go idle
		o := Options{Name: "idle", Source: f.source, Target: f.target, Kind: Planned,
			Timeout: 30 * time.Second, MaxLag: 30 * time.Second}
		failStep = func(id string) error {
			if i < 2 && id == "catchup" {
				return errors.New("injected failure after the catch-up")
			}
			return nil
		}
		p, err := Build(o)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(context.Background(), p)
		failStep = nil
		if i < 2 {
			if err == nil || !strings.Contains(err.Error(), "injected failure") {
				t.Fatalf("run %d: the catch-up should succeed and the injected failure stop the plan: %v\n%+v", i, err, res)
			}
			continue
		}
		if err != nil {
			t.Fatalf("failover: %v\n%+v", err, res)
		}
		end, err1 := pglogrepl.ParseLSN(res.EndLSN)
		applied, err2 := pglogrepl.ParseLSN(res.AppliedLSN)
		if err1 != nil || err2 != nil || applied > end {
			t.Fatalf("applied %s, end mark %s: the link must stop before the mark", res.AppliedLSN, res.EndLSN)
		}
	}
	f.assertSame()
}
