package link

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// A failover holds the link's failover lease for its whole run: a
// session-level advisory lock in the target database, on a session of its
// own. A second failover of the link is refused while it runs, and a link
// left failing_over by a failover whose process died (a kill, a crash, a
// lost machine) can be told from one under way: its lease ended with its
// session. A failover whose lease session ends under it (a target
// restart) is one of those too, for the next failover: it must stop at
// once and undo nothing (see BindFailoverLease).

func failoverLeaseKey(link string) int64 {
	h := fnv.New64a()
	h.Write([]byte(namesFor(link).LockKey + "/failover"))
	return int64(h.Sum64())
}

// TakeFailoverLease takes the link's failover lease, and watches it; it
// is given back when the control is closed.
func (c *Control) TakeFailoverLease(ctx context.Context) error {
	l, err := takeLease(ctx, c.Tgt, failoverLeaseKey(c.Name), "the failover lease of link "+c.Name)
	if errors.Is(err, errLeaseHeld) {
		return fmt.Errorf("another pglink failover of link %s runs right now (it holds the link's failover lease); wait until it ends (pglink status shows its step)", c.Name)
	}
	if err != nil {
		return err
	}
	l.keep(ctx, nil, false)
	c.failover = l
	return nil
}

// BindFailoverLease returns a context that ends the moment the failover
// lease (see TakeFailoverLease) is found lost: a failover runs its steps
// in it, and FailoverLeaseLost then says why they stopped.
func (c *Control) BindFailoverLease(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if c.failover == nil {
		return nil, nil, errors.New("the failover lease is not taken")
	}
	return c.failover.bind(ctx)
}

// FailoverLeaseLost returns an error when the failover lease was lost:
// another failover may have taken the link over since, so this one must
// stop where it is and undo nothing.
func (c *Control) FailoverLeaseLost() error {
	if c.failover == nil {
		return nil
	}
	c.failover.mu.Lock()
	lost := c.failover.err != nil
	c.failover.mu.Unlock()
	if !lost {
		return nil
	}
	return fmt.Errorf("target: this failover lost the failover lease of link %s (its session on the target ended), so it stopped where it was "+
		"and undid nothing, as an interrupted failover; run pglink failover again, which undoes or finishes it (pglink status shows how far it got): %w",
		c.Name, errLeaseLost)
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
