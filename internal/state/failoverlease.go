package state

import (
	"context"
	"errors"
	"fmt"
)

// A failover holds the link's failover lease for its whole run: a
// session-level advisory lock in the target database, on a session of its
// own. A second failover of the link is refused while it runs, and a link
// left failing_over by a failover whose process died (a kill, a crash, a
// lost machine) can be told from one under way: its lease ended with its
// session. A failover whose lease session ends under it (a target
// restart) is one of those too, for the next failover: it must stop at
// once and undo nothing (see BindFailoverLease).

// TakeFailoverLease takes the link's failover lease, and watches it; it
// is given back when the control is closed.
func (c *Control) TakeFailoverLease(ctx context.Context) error {
	l, err := TakeLease(ctx, c.Tgt, FailoverLeaseKey(c.Name), "the failover lease of link "+c.Name)
	if errors.Is(err, ErrLeaseHeld) {
		return fmt.Errorf("another pglink failover of link %s runs right now (it holds the link's failover lease); wait until it ends (pglink status shows its step)", c.Name)
	}
	if err != nil {
		return err
	}
	l.Keep(ctx, nil, false)
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
	return c.failover.Bind(ctx)
}

// FailoverLeaseLost returns an error when the failover lease was lost:
// another failover may have taken the link over since, so this one must
// stop where it is and undo nothing.
func (c *Control) FailoverLeaseLost() error {
	if c.failover == nil {
		return nil
	}
	if !c.failover.Failed() {
		return nil
	}
	return fmt.Errorf("target: this failover lost the failover lease of link %s (its session on the target ended), so it stopped where it was "+
		"and undid nothing, as an interrupted failover; run pglink failover again, which undoes or finishes it (pglink status shows how far it got): %w",
		c.Name, ErrLeaseLost)
}
