package failover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/validate"
	"github.com/pglink/pglink/internal/wait"
)

// stopTimeout bounds the wait for the link's process to stop at the cut.
const stopTimeout = 30 * time.Second

func plannedSteps(o Options) []Step {
	steps := []Step{
		{ID: "preflight", Title: "Check the link", Side: "both",
			What: fmt.Sprintf("The link replicates, both sides answer, the lag is under %s (waits up to %s for it), no validation or failover runs. Changes nothing but the link's phase (failing_over).", o.MaxLag, o.CatchUpTimeout),
			run:  plannedPreflight, undo: undoBegin, Script: scriptPreflight(o)},
		{ID: "fence", Title: "Block writes on the source", Side: "source",
			What: "The source database defaults to read-only transactions, every table refuses writes with a trigger enabled ALWAYS (it holds against SET default_transaction_read_only = off), and the other sessions are ended. Checked from a read-write transaction against every table.",
			run:  fenceStep, undo: unfenceStep, Script: scriptFence()},
		{ID: "catchup", Title: "Catch up exactly", Side: "both",
			What: fmt.Sprintf("Marks the source's end position with a message in its WAL, and waits (at most %s) until the target has applied every transaction before it, and holds there.", o.Timeout),
			run:  catchUpStep, undo: releaseStep, Script: scriptCatchUp(o)},
	}
	if o.Validate {
		steps = append(steps, Step{ID: "validate", Title: "Compare source and target", Side: "both",
			What: "Compares every table of the link on both sides; a difference stops the failover.",
			run:  validateStep, Script: scriptValidate(o)})
	}
	steps = append(steps,
		Step{ID: "sequences", Title: "Set the target's sequences", Side: "target",
			What: "Sets every sequence on the target to the source's value (setval), and reads them back.",
			run:  sequencesStep, Script: scriptSequences()},
		Step{ID: "matviews", Title: "Refresh materialized views", Side: "target",
			What: "Refreshes every materialized view in the link's schemas on the target (and those they read in other schemas), each after those it reads, so they hold the final data when the target opens (logical replication does not carry their contents). A view that cannot be refreshed stops the failover.",
			run:  matViewsStep, Script: scriptMatViews(o)},
	)
	if o.Reverse {
		steps = append(steps, reverseSlotStep(o))
	}
	steps = append(steps,
		Step{ID: "open", Title: "Make the target writable", Side: "target", Commits: true,
			What: "Removes the link's read-only guard from the target's tables and the database's read-only default, and checks from a new session that it may write. From here on the target takes writes and nothing is undone.",
			run:  openStep, undo: closeStep, Script: scriptOpen(o), finish: true},
	)
	if o.Reverse {
		steps = append(steps, handOverStep(o))
	}
	steps = append(steps,
		Step{ID: "cut", Title: "Cut the link", Side: "both",
			What: cutWhat(o),
			run:  cutStep, Script: scriptCut(o), finish: true},
	)
	if o.Reverse {
		return steps
	}
	src := Step{ID: "source", Title: "Keep the source read-only", Side: "source",
		What: "The source stays fenced, so no write lands on the old side unnoticed; pglink release-source lifts the fence later.",
		run:  keepFenceStep, Script: "# pglink release-source (or the SQL of step 2's undo) lifts the fence later\n" + ok("the source stays read-only"), finish: true}
	if o.ReleaseSource {
		src = Step{ID: "source", Title: "Make the source writable again", Side: "source",
			What: "Removes the fence (--release-source): the source takes writes again.",
			run:  releaseSourceStep, Script: scriptUnfence(), finish: true}
	}
	return append(steps, src)
}

func cutWhat(o Options) string {
	s := "Marks the link failed over (a process running it stops) and drops the replication slot on the source."
	if o.Cleanup {
		s += " With --cleanup, also drops the publication, the target's replication origins and the link's state in schema pglink (the data stays)."
	}
	return s
}

func plannedPreflight(ctx context.Context, x *execution) (string, error) {
	in, err := x.ctl.Info(ctx)
	if err != nil {
		return "", err
	}
	recovered := ""
	if in.Phase == state.PhaseFailingOver || in.Phase == state.PhaseFailedOver && in.FailoverStep == state.FailoverStepCut {
		// This process holds the failover lease (see Run), so the failover
		// that left this phase has ended without finishing.
		if recovered, err = x.recoverInterrupted(ctx, in); err != nil || x.finishing {
			return recovered, err
		}
		if in, err = x.ctl.Info(ctx); err != nil {
			return "", err
		}
		recovered += "; "
	}
	if err := refusePhase(x.ctl.Name, in, state.PhaseReplicating); err != nil {
		return "", err
	}
	if in.PauseState != "" {
		return "", fmt.Errorf("a validation is pausing link %s right now; run the failover when it has ended", x.ctl.Name)
	}
	if err := x.ctl.RefuseJoining(ctx); err != nil {
		return "", err
	}
	src, err := x.sourceConn(ctx)
	if err != nil {
		return "", err
	}
	if err := x.ctl.CheckSource(ctx, src); err != nil {
		return "", err
	}
	if ok, err := x.ctl.SlotExists(ctx, src); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("source: the link's replication slot %s is missing, so the link cannot catch up; a planned failover is not possible (pglink failover --forced makes the target writable with what it has)", in.Slot)
		}
		return "", err
	}
	if fenced, err := state.SourceFenced(ctx, src); err != nil || fenced {
		if err == nil {
			err = errors.New("source: the database is fenced already (schema pglink_fence exists): an earlier failover left it read-only; run pglink release-source first if the source should take writes")
		}
		return "", err
	}
	if x.opts.Reverse {
		if err := x.checkReverse(ctx, src); err != nil {
			return "", err
		}
	}
	started := ""
	if !in.Running {
		x.runHere(ctx)
		started = "; no process ran the link, so this one runs it"
	}
	lag, err := x.waitLag(ctx)
	if err != nil {
		return "", err
	}
	if err := x.ctl.BeginFailover(ctx, Planned, state.PhaseReplicating); err != nil {
		return "", err
	}
	x.began = true
	return fmt.Sprintf("%sreplicating, lag %.1f s%s", recovered, lag, started), nil
}

// waitLag waits until the running link reports a lag under MaxLag, so
// that the source is fenced only when the catch-up inside the downtime is
// short. It waits at most CatchUpTimeout for the lag to fall, saying how
// far it is every second, and at most the time a link needs to report
// once (or Timeout, for a link this process just started) for a first lag.
func (x *execution) waitLag(ctx context.Context) (float64, error) {
	start := time.Now()
	patience := 5 * time.Second
	if x.here != nil {
		patience = x.opts.Timeout
	}
	var told time.Time
	for {
		in, err := x.ctl.Info(ctx)
		if err != nil {
			return 0, err
		}
		fresh := in.Running && in.LagSeconds != nil && time.Since(in.UpdatedAt) < 5*time.Second
		if fresh && *in.LagSeconds <= x.opts.MaxLag.Seconds() {
			return *in.LagSeconds, nil
		}
		if err := x.hereFailed(); err != nil {
			return 0, err
		}
		waited := time.Since(start)
		switch {
		case !fresh && waited > patience:
			return 0, fmt.Errorf("link %s reports no lag (is its process streaming? see pglink status); nothing was changed", x.ctl.Name)
		case fresh && waited > x.opts.CatchUpTimeout:
			return 0, fmt.Errorf("link %s still lags %.1f s after %s, more than --max-lag %s: the source writes faster than the target applies; nothing was changed; try again at a quieter time, or raise --max-lag (the downtime grows with it) or --catch-up-timeout", x.ctl.Name, *in.LagSeconds, x.opts.CatchUpTimeout, x.opts.MaxLag)
		case fresh && time.Since(told) >= time.Second:
			told = time.Now()
			x.tell(fmt.Sprintf("lag %.1f s; waiting for it to fall under --max-lag %s before the source is fenced (%s left)",
				*in.LagSeconds, x.opts.MaxLag, (x.opts.CatchUpTimeout - waited).Round(time.Second)))
		}
		if err := wait.Sleep(ctx, 200*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// refusePhase says why a link in another phase than want cannot fail over.
func refusePhase(name string, in state.Info, want ...state.Phase) error {
	for _, w := range want {
		if in.Phase == w {
			return nil
		}
	}
	switch in.Phase {
	case state.PhaseFailedOver:
		if in.FailoverStep == state.FailoverStepCut {
			return fmt.Errorf("link %s has failed over (%s), but its failover was interrupted while it cut the link: run pglink failover --%s again to finish the cut (it drops the source's slot when the source answers), or pglink drop to remove what is left", name, in.FailoverKind, in.FailoverKind)
		}
		return fmt.Errorf("link %s has failed over already (%s); there is nothing to fail over", name, in.FailoverKind)
	case state.PhaseFailingOver:
		return fmt.Errorf("link %s is failing over already (%s, at step %s): another pglink failover runs it, or one was interrupted; see pglink status", name, in.FailoverKind, in.FailoverStep)
	case state.PhaseSeeding:
		return fmt.Errorf("link %s is still seeding (step %s): the target is not complete yet; wait for the phase replicating", name, in.SeedStep)
	case state.PhaseBroken:
		return fmt.Errorf("link %s is broken: fix the cause that pglink status shows first; if the source is gone, use --forced", name)
	}
	return fmt.Errorf("link %s is %s: it cannot fail over", name, in.Phase)
}

// undoBegin returns the link to replicating, if this failover moved it
// to failing_over: a preflight that failed before, or refused the link
// because another failover (or a script) has it, leaves its phase alone.
func undoBegin(ctx context.Context, x *execution) error {
	var err error
	if x.began {
		err = x.ctl.AbortFailover(ctx, "a failover step failed")
	}
	x.stopHere(ctx)
	return err
}

func fenceStep(ctx context.Context, x *execution) (string, error) {
	// The link starts to hold now, while the source is fenced, so that it
	// knows before the end mark reaches it (see catchUpStep).
	if err := x.ctl.RequestHold(ctx); err != nil {
		return "", err
	}
	x.blockedAt = time.Now()
	res, err := Fence(ctx, x.src)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d tables and partitions refuse writes; %d sessions ended", res.Tables, res.EndedSessions), nil
}

func unfenceStep(ctx context.Context, x *execution) error {
	src, err := x.sourceConn(ctx)
	if err != nil {
		return err
	}
	return errors.Join(Unfence(ctx, src), x.ctl.ReleaseHold(ctx))
}

// sentinelSQL writes the failover's mark into the source's WAL; it returns
// the mark's position, before which every transaction that will ever
// commit on the fenced source has committed.
const sentinelSQL = `SELECT pg_logical_emit_message(true, 'pglink', 'failover ' || $1::text)::text`

// catchUpStep writes the end mark X into the source's WAL (every user
// transaction has committed before it: the source is fenced) and lets the
// holding link apply up to X. The link learnt to hold before X was
// written, so it cannot apply the mark's own transaction.
func catchUpStep(ctx context.Context, x *execution) (string, error) {
	// The link holds before the source's next transaction: on a quiet
	// source, an empty one written here.
	if err := x.ctl.WaitHolding(ctx, x.opts.Timeout, state.Nudger(x.src)); err != nil {
		if herr := x.hereFailed(); herr != nil {
			err = herr
		}
		return "", fmt.Errorf("the link did not hold within --timeout %s: %w", x.opts.Timeout, err)
	}
	var at string
	if err := x.src.QueryRow(ctx, sentinelSQL, x.ctl.Name).Scan(&at); err != nil {
		return "", fmt.Errorf("source: mark the end position: %w", err)
	}
	lsn, err := pglogrepl.ParseLSN(at)
	if err != nil {
		return "", fmt.Errorf("source: mark the end position: %w", err)
	}
	x.endLSN = lsn
	if err := x.ctl.HoldAt(ctx, lsn); err != nil {
		return "", err
	}
	if err := x.ctl.WaitHeld(ctx, x.opts.Timeout); err != nil {
		if herr := x.hereFailed(); herr != nil {
			err = herr
		}
		return "", fmt.Errorf("the target did not apply the source's last transactions within --timeout %s: %w", x.opts.Timeout, err)
	}
	in, err := x.ctl.Info(ctx)
	if err != nil {
		return "", err
	}
	if in.AppliedLSN > lsn {
		return "", fmt.Errorf("target: the link applied past the end position (%s > %s)", in.AppliedLSN, lsn)
	}
	x.res.AppliedLSN = in.AppliedLSN.String()
	x.res.AppliedCommitTime = in.AppliedCommitTime
	return fmt.Sprintf("every source transaction before %s is on the target", lsn), nil
}

func releaseStep(ctx context.Context, x *execution) error {
	return x.ctl.ReleaseHold(ctx)
}

func validateStep(ctx context.Context, x *execution) (string, error) {
	rep, err := x.compare(ctx)
	if err != nil {
		return "", fmt.Errorf("compare: %w", err)
	}
	var rows int64
	for _, t := range rep.Tables {
		rows += t.SourceRows
	}
	if !rep.Equal() {
		return "", fmt.Errorf("source and target differ (run pglink validate --name %s for the keys): %s", x.ctl.Name, differences(rep))
	}
	return fmt.Sprintf("%d tables, %d rows identical", len(rep.Tables), rows), nil
}

// matViewsStep refreshes the target's materialized views once it holds
// every source transaction, before it opens: REFRESH locks each view
// against its readers while it runs, which nobody is yet.
func matViewsStep(ctx context.Context, x *execution) (string, error) {
	views, err := state.RefreshMatViews(ctx, x.ctl.Conn(), x.ctl.Name)
	if err != nil {
		return "", err
	}
	if len(views) == 0 {
		return "no materialized views", nil
	}
	return fmt.Sprintf("%d refreshed: %s", len(views), strings.Join(views, ", ")), nil
}

func openStep(ctx context.Context, x *execution) (string, error) {
	// A failover that finishes an interrupted one keeps the step it found
	// ("open", or "cut" with the phase failed_over).
	if !x.finishing {
		if err := x.ctl.SetFailoverStep(ctx, state.FailoverStepOpen); err != nil {
			return "", err
		}
	}
	if err := x.ctl.OpenTarget(ctx); err != nil {
		return "", err
	}
	if err := liftOldFence(ctx, x); err != nil {
		return "", err
	}
	x.writableAt = time.Now()
	if err := checkWritable(ctx, x); err != nil {
		return "", err
	}
	return "new sessions on the target may write", nil
}

// checkWritable opens a session as the user would, without pglink's
// settings, and checks that its transactions are not read-only.
func checkWritable(ctx context.Context, x *execution) error {
	tgt, err := endpoint.Parse(endpoint.Target, x.opts.Target)
	if err != nil {
		return err
	}
	conn, err := tgt.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var ro string
	if err := conn.QueryRow(ctx, `SHOW transaction_read_only`).Scan(&ro); err != nil {
		return fmt.Errorf("target: check that it takes writes: %w", err)
	}
	if ro != "off" {
		return errors.New("target: new sessions still get read-only transactions (is default_transaction_read_only set for the role or the server?)")
	}
	var guards int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_trigger WHERE tgname = $1`, x.ctl.Trigger()).Scan(&guards); err != nil {
		return fmt.Errorf("target: check the read-only guard: %w", err)
	}
	if guards != 0 {
		return fmt.Errorf("target: %d tables still carry the link's read-only guard", guards)
	}
	return nil
}

func closeStep(ctx context.Context, x *execution) error {
	return x.ctl.CloseTarget(ctx)
}

func cutStep(ctx context.Context, x *execution) (string, error) {
	detail := fmt.Sprintf("%s done", x.plan.Kind)
	if err := x.ctl.FinishFailover(ctx, x.endLSN, detail); err != nil {
		return "", err
	}
	return x.cut(ctx, true)
}

// cut stops the link's process, drops the slot when the source answers,
// and with --cleanup the rest of what the link made.
func (x *execution) cut(ctx context.Context, sourceUp bool) (string, error) {
	x.stopHere(ctx)
	if x.lease == nil {
		release, err := x.ctl.WaitStopped(ctx, stopTimeout)
		if err != nil {
			return "", err
		}
		x.lease = release
	}
	detail := "link stopped"
	if sourceUp {
		if err := x.ctl.DropSlots(ctx, x.src); err != nil {
			return "", err
		}
		detail += "; slot dropped"
		if x.opts.Cleanup {
			if err := x.ctl.DropPublication(ctx, x.src); err != nil {
				return "", err
			}
			detail += "; publication dropped"
		}
	}
	if x.opts.Cleanup {
		x.lease()
		x.lease = nil
		if err := x.ctl.RemoveState(ctx); err != nil {
			return "", err
		}
		detail += "; origin and link state removed"
	}
	return detail, nil
}

func keepFenceStep(ctx context.Context, x *execution) (string, error) {
	fenced, err := state.SourceFenced(ctx, x.src)
	if err != nil {
		return "", err
	}
	x.res.SourceFenced = &fenced
	if !fenced {
		return "", errors.New("source: the fence is gone; something removed it")
	}
	return "the source refuses writes (pglink release-source lifts it)", nil
}

func releaseSourceStep(ctx context.Context, x *execution) (string, error) {
	if err := Unfence(ctx, x.src); err != nil {
		return "", err
	}
	fenced := false
	x.res.SourceFenced = &fenced
	return "the source takes writes again", nil
}

// differences names what differs in a report, briefly.
func differences(rep validate.Report) string {
	var out []string
	for _, t := range rep.Tables {
		if t.Differs() {
			out = append(out, fmt.Sprintf("%s (%d missing, %d extra, %d different rows)", t.Table, t.MissingCount, t.ExtraCount, t.DifferentCount))
		}
	}
	out = append(out, prefixed("only on the source: ", rep.OnlySource)...)
	out = append(out, prefixed("only on the target: ", rep.OnlyTarget)...)
	out = append(out, prefixed("column type differs: ", rep.Different)...)
	return strings.Join(out, "; ")
}

func prefixed(p string, items []string) []string {
	if len(items) == 0 {
		return nil
	}
	return []string{p + strings.Join(items, ", ")}
}

// compare compares the link's tables on both sides as they are now, each
// side in a snapshot of its own: exact only while the source refuses
// writes and the link holds, as during a failover.
func (x *execution) compare(ctx context.Context) (validate.Report, error) {
	row, err := state.Load(ctx, x.ctl.Conn(), x.ctl.Name)
	if err != nil {
		return validate.Report{}, err
	}
	tables, err := catalog.Tables(ctx, x.src, catalog.Filter{Include: row.Include, Exclude: row.Exclude})
	if err != nil {
		return validate.Report{}, fmt.Errorf("source: list tables: %w", err)
	}
	return validate.Compare(ctx, validate.Options{Source: x.ctl.Src.Config, Target: x.ctl.Tgt.Config, Tables: tables, Jobs: x.opts.ValidateJobs})
}
