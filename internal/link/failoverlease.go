package link

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// A failover holds the link's failover lease for its whole run: a
// session-level advisory lock in the target database, on the failover's
// control session. A second failover of the link is refused while it
// runs, and a link left failing_over by a failover whose process died (a
// kill, a crash, a lost machine) can be told from one under way: its
// lease ended with its session.

func failoverLeaseKey(link string) int64 {
	h := fnv.New64a()
	h.Write([]byte(namesFor(link).LockKey + "/failover"))
	return int64(h.Sum64())
}

// TakeFailoverLease takes the link's failover lease on the control
// session; it is given back when the control is closed.
func (c *Control) TakeFailoverLease(ctx context.Context) error {
	got, err := lockWithGrace(ctx, c.conn, failoverLeaseKey(c.Name))
	if err != nil {
		return fmt.Errorf("target: take the failover lease of link %s: %w", c.Name, err)
	}
	if !got {
		return fmt.Errorf("another pglink failover of link %s runs right now (it holds the link's failover lease); wait until it ends (pglink status shows its step)", c.Name)
	}
	return nil
}

// failoverRuns reports whether some process holds the link's failover
// lease now.
func failoverRuns(ctx context.Context, conn *pgx.Conn, link string) (bool, error) {
	var held bool
	if err := conn.QueryRow(ctx, advisoryHeldSQL(failoverLeaseKey(link))).Scan(&held); err != nil {
		return false, fmt.Errorf("target: check the failover lease of link %s: %w", link, err)
	}
	return held, nil
}

// Steps a failover records in the link's failover_step: "begin" from its
// start, "open" once it begins to make the target writable (after which
// nothing is undone), "cut" with the phase failed_over once it begins to
// cut the link (stop it, drop the slot), "done" at its end. A failover
// run as a script (pglink failover --script) records them followed by
// ScriptMark: a script holds no failover lease, so pglink cannot tell one
// that runs from one that was interrupted, and takes over neither.
const (
	FailoverStepOpen = "open"
	FailoverStepCut  = "cut"
	FailoverStepDone = "done"
	ScriptMark       = " (script)"
)

// ByScript says whether step was recorded by a failover script.
func ByScript(step string) bool { return strings.HasSuffix(step, ScriptMark) }

// FailoverOpened says whether a failover that recorded step had begun to
// make the target writable: the target may have taken writes since.
func FailoverOpened(step string) bool {
	step = strings.TrimSuffix(step, ScriptMark)
	return step == FailoverStepOpen || step == FailoverStepCut
}

// FailoverStage says, for people, how far a failover that recorded step
// had got.
func FailoverStage(step string) string {
	switch strings.TrimSuffix(step, ScriptMark) {
	case FailoverStepCut:
		return "the target takes writes; it had begun to cut the link, so the source may still hold the link's slot"
	case FailoverStepOpen:
		return "it had begun to make the target writable"
	}
	return "it had not made the target writable"
}
