package failover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/state"
)

// sourceProbeTimeout bounds each attempt to reach the source in a forced
// failover: the source is presumed gone, and the failover must not wait.
const sourceProbeTimeout = 3 * time.Second

func forcedSteps(o Options) []Step {
	return []Step{
		{ID: "preflight", Title: "Check the link", Side: "target",
			What: "The link has been seeded (replicating or broken) and no failover runs; records what the target has applied and the last source position it knew, to say how much may be lost.",
			run:  forcedPreflight, undo: undoBegin, Script: scriptForcedPreflight(o)},
		{ID: "stop", Title: "Stop the link", Side: "target",
			What: "The process running the link stops at once (its open batch is rolled back, so the target stays at a source transaction boundary).",
			run:  stopStep, Script: scriptStop(o)},
		{ID: "sequences", Title: "Set the target's sequences", Side: "target",
			What: fmt.Sprintf("Without the source, sets each sequence past the largest value in its column plus a margin of %d.", o.SequenceMargin),
			run:  sequencesFromMaxima, Script: scriptSequencesFromMaxima(o)},
		{ID: "open", Title: "Make the target writable", Side: "target", Commits: true,
			What: "Removes the link's read-only guard and the database's read-only default, and checks from a new session that it may write.",
			run:  openStep, undo: closeStep, Script: scriptOpen(o)},
		{ID: "cut", Title: "Cut the link", Side: "both",
			What: cutWhat(o) + " The slot is dropped only if the source answers; otherwise pglink fence-source drops it when the source is back.",
			run:  forcedCutStep, Script: scriptForcedCut(o), finish: true},
	}
}

func forcedPreflight(ctx context.Context, x *execution) (string, error) {
	in, err := x.ctl.Info(ctx)
	if err != nil {
		return "", err
	}
	// A link left failing_over, or failed_over in the cut, is one whose
	// failover was interrupted: this process holds the failover lease (see
	// Run). A forced failover finishes it.
	if in.Phase == state.PhaseFailedOver && in.FailoverStep == state.FailoverStepCut {
		if err := refuseScript(x.ctl.Name, in); err != nil {
			return "", err
		}
		x.finishing, x.opened = true, true
		applied := in.FailoverLSN
		if applied == 0 {
			applied = in.AppliedLSN
		}
		x.res.AppliedLSN = applied.String()
		x.res.AppliedCommitTime = in.AppliedCommitTime
		return fmt.Sprintf("an interrupted %s failover had begun to cut the link: finishing it from there", in.FailoverKind), nil
	}
	if err := refusePhase(x.ctl.Name, in, state.PhaseReplicating, state.PhaseBroken, state.PhaseFailingOver); err != nil {
		return "", err
	}
	if in.Phase == state.PhaseFailingOver {
		if err := refuseScript(x.ctl.Name, in); err != nil {
			return "", err
		}
		x.res.note("an interrupted %s failover had left the link failing over (%s); this forced failover finishes it", in.FailoverKind, in.FailoverStep.Stage())
		x.opened = in.FailoverStep.Opened() // the target may have taken writes: undo nothing
	}
	x.res.AppliedLSN = in.AppliedLSN.String()
	x.res.AppliedCommitTime = in.AppliedCommitTime
	known := in.ServerWALEnd
	up, err := x.probeSource(ctx)
	if err != nil {
		return "", err
	}
	if up {
		var cur string
		if err := x.src.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&cur); err == nil {
			x.res.note("the source answers: a planned failover (--planned) would lose nothing")
			if l, err := parseLSN(cur); err == nil {
				known = max(known, l)
			}
		}
	}
	if known != 0 {
		x.res.LastKnownSourceLSN = known.String()
		lost := int64(0)
		if known > in.AppliedLSN {
			lost = int64(known - in.AppliedLSN)
		}
		x.res.MayBeLostBytes = &lost
	}
	if err := x.ctl.BeginFailover(ctx, Forced, state.PhaseReplicating, state.PhaseBroken, state.PhaseFailingOver); err != nil {
		return "", err
	}
	x.began = true
	return fmt.Sprintf("%s; applied up to %s, last known source position %s", in.Phase, in.AppliedLSN, known), nil
}

// probeSource tries the source briefly; it says whether it answered. A
// source given that is the target itself is an error: the failover would
// fence the database it opens.
func (x *execution) probeSource(ctx context.Context) (bool, error) {
	pctx, cancel := context.WithTimeout(ctx, sourceProbeTimeout)
	defer cancel()
	if _, err := x.sourceConn(pctx); err != nil {
		x.log.Info("the source does not answer", "error", err)
		return false, nil
	}
	if err := x.ctl.CheckSource(pctx, x.src); err != nil {
		x.src.Close(context.WithoutCancel(ctx))
		x.src = nil
		if errors.Is(err, assess.ErrSameDatabase) {
			return false, err
		}
		x.log.Info("the source given is not the link's source", "error", err)
		return false, nil
	}
	return true, nil
}

func stopStep(ctx context.Context, x *execution) (string, error) {
	release, err := x.ctl.WaitStopped(ctx, stopTimeout)
	if err != nil {
		return "", err
	}
	x.lease = release
	in, err := x.ctl.Info(ctx)
	if err != nil {
		return "", err
	}
	x.res.AppliedLSN = in.AppliedLSN.String()
	x.res.AppliedCommitTime = in.AppliedCommitTime
	if x.res.LastKnownSourceLSN != "" {
		known, _ := parseLSN(x.res.LastKnownSourceLSN)
		lost := int64(0)
		if known > in.AppliedLSN {
			lost = int64(known - in.AppliedLSN)
		}
		x.res.MayBeLostBytes = &lost
	}
	return fmt.Sprintf("stopped; the target holds the source's transactions up to %s", in.AppliedLSN), nil
}

func forcedCutStep(ctx context.Context, x *execution) (string, error) {
	applied, _ := parseLSN(x.res.AppliedLSN)
	if err := x.ctl.FinishFailover(ctx, applied, "forced done"); err != nil {
		return "", err
	}
	up, err := x.probeSource(ctx)
	if err != nil {
		return "", err
	}
	detail, err := x.cut(ctx, up)
	if err != nil {
		return "", err
	}
	if !up {
		x.res.note("the source did not answer, so its replication slot pglink_%s is still there and keeps WAL; pglink fence-source drops it when the source is back", x.ctl.Name)
		detail += "; the source did not answer: its slot is left"
	}
	return detail, nil
}

func parseLSN(s string) (change.LSN, error) { return pglogrepl.ParseLSN(s) }
