package failover

import (
	"context"
	"fmt"

	"github.com/pglink/pglink/internal/state"
)

// An interrupted failover is one whose process died (a kill, a crash, a
// lost machine or session) before it finished or undid its steps: the
// link stays failing_over and nobody holds its failover lease. The next
// failover of the link, which holds that lease, deals with it:
//   - planned, when the interrupted one was planned and had not begun to
//     make the target writable: its steps are undone as its own undo would
//     have (the source's fence lifted, the link's hold released, the link
//     back to replicating), and the failover then runs from the start;
//   - planned, when the interrupted one had begun to make the target
//     writable, or to cut the link (the phase is failed_over then, and
//     the source may still hold the slot): nothing is undone, since the
//     target may have taken writes; the steps from there on run again
//     (open, cut, source) and the earlier ones are skipped: they were
//     done, the catch-up included;
//   - forced: it finishes any interrupted failover, a cut included,
//     without the source (see forcedPreflight).

// recoverInterrupted undoes or takes over, for a planned failover, the
// interrupted failover that left the link in phase in, and says what it
// did. When it takes over, x.finishing is set.
func (x *execution) recoverInterrupted(ctx context.Context, in state.Info) (string, error) {
	if err := refuseScript(x.ctl.Name, in); err != nil {
		return "", err
	}
	if in.FailoverKind != Planned {
		if in.Phase == state.PhaseFailedOver {
			return "", refusePhase(x.ctl.Name, in)
		}
		return "", fmt.Errorf("link %s was left failing over by an interrupted %s failover; run pglink failover --forced again to finish it", x.ctl.Name, in.FailoverKind)
	}
	src, err := x.sourceConn(ctx)
	if err != nil {
		return "", fmt.Errorf("an interrupted planned failover left link %s failing over, and the source must answer to undo or finish it (if the source is gone, pglink failover --forced finishes it): %w", x.ctl.Name, err)
	}
	if in.FailoverStep.Opened() {
		if err := x.sameReverse(ctx); err != nil {
			return "", err
		}
		x.finishing, x.opened = true, true
		x.endLSN = in.FailoverLSN
		if in.FailoverStep == state.FailoverStepCut {
			return "an interrupted failover had begun to cut the link: finishing it from there", nil
		}
		return "an interrupted failover had begun to make the target writable: finishing it from there", nil
	}
	fenced, err := state.SourceFenced(ctx, src)
	if err != nil {
		return "", err
	}
	if fenced {
		if err := Unfence(ctx, src); err != nil {
			return "", fmt.Errorf("undo the interrupted failover's fence: %w", err)
		}
	}
	if err := x.ctl.ReleaseHold(ctx); err != nil {
		return "", err
	}
	if in.FailoverStep == state.FailoverStepReverse {
		if err := dropReverseSlot(ctx, x); err != nil {
			return "", fmt.Errorf("undo the interrupted failover's reverse slot: %w", err)
		}
	}
	if err := x.ctl.AbortFailover(ctx, "an interrupted failover was undone"); err != nil {
		return "", err
	}
	if fenced {
		return "an interrupted failover was undone first: the source took writes again", nil
	}
	return "an interrupted failover was undone first", nil
}

// refuseScript refuses to take over a failover run as a script: it may
// still run (see state.ScriptMark).
func refuseScript(name string, in state.Info) error {
	if !in.FailoverStep.ByScript() {
		return nil
	}
	return fmt.Errorf("link %s is failing over by a failover script (pglink failover --script), which may still run: scripts hold no lease, so pglink cannot tell; let it finish, or if it was interrupted run its remaining steps or its undo by hand", name)
}
