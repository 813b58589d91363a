package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/link"
	"github.com/pglink/pglink/internal/state"
)

// undoTimeout bounds the undo of a failed plan, which runs even when the
// failover was interrupted.
const undoTimeout = 2 * time.Minute

// failStep, set by tests, makes a step fail after it ran.
var failStep func(id string) error

// crashAfter, set by tests, makes Run return after step id ran, undoing
// nothing, as if the process died there: the deferred close ends its
// sessions, and with them its leases.
var crashAfter func(id string) bool

// errCrashed is what Run returns at crashAfter.
var errCrashed = errors.New("crashed on purpose (test)")

// execution is the state of a plan being run.
type execution struct {
	plan *Plan
	opts Options
	log  *slog.Logger
	ctl  *state.Control
	src  *pgx.Conn // the source, when it answers

	endLSN     change.LSN // planned: the source position after the fence
	blockedAt  time.Time  // planned: when the source began to refuse writes
	writableAt time.Time  // when the target began to take writes
	here       *linkHere  // the link, when this process runs it for the failover
	lease      func()     // the link's lease, once its process has stopped
	res        *Result

	step int // the step running now, for its progress (tell)
	// reverseDDL: the reverse link's DDL settings, once its capture is on
	// the target (see reverseCapture).
	reverseDDL *state.DDLSettings
	began      bool // this failover moved the link to failing_over (see undoBegin)
	// opened: an interrupted failover of this link had begun to make the
	// target writable, so nothing is undone from the start; finishing:
	// only the steps from there on run (see recoverInterrupted).
	opened, finishing bool
}

func checkOptions(o Options) error {
	if err := state.ValidateName(o.Name); err != nil {
		return err
	}
	switch o.Kind {
	case Planned:
	case Forced:
		if o.Validate {
			return errors.New("--validate needs the source: it cannot go with --forced")
		}
		if o.ReleaseSource {
			return errors.New("--release-source needs the source: it cannot go with --forced (use pglink release-source once the source is back)")
		}
		if o.Reverse {
			return errors.New("--reverse needs the source: it cannot go with --forced")
		}
	default:
		return fmt.Errorf("unknown failover kind %q: use --planned or --forced", o.Kind)
	}
	if o.Reverse && o.ReleaseSource {
		return errors.New("--reverse keeps the source for the reverse link: it cannot go with --release-source")
	}
	if o.Reverse {
		if err := state.ValidateName(state.ReverseName(o.Name)); err != nil {
			return fmt.Errorf("--reverse: the reverse link's name %s: %w", state.ReverseName(o.Name), err)
		}
	}
	if o.MaxLag < 0 || o.CatchUpTimeout < 0 || o.Timeout < 0 || o.SequenceMargin < 0 {
		return errors.New("--max-lag, --catch-up-timeout, --timeout and --sequence-margin must not be negative")
	}
	return nil
}

// Run executes the plan. On a failure before the target takes writes it
// undoes what the earlier steps did, and the error says so; the Result
// is returned in every case.
func Run(ctx context.Context, p *Plan) (*Result, error) {
	x := &execution{plan: p, opts: p.Opts, log: p.Opts.Logger.With("link", p.Link)}
	x.res = newResult(p)
	defer x.close(ctx)
	ctl, err := state.OpenControl(ctx, p.Link, p.Opts.Source, p.Opts.Target)
	if err != nil {
		x.res.fail(err, "nothing was changed")
		return x.res, err
	}
	x.ctl = ctl
	if err := ctl.TakeFailoverLease(ctx); err != nil {
		x.res.fail(err, "nothing was changed")
		return x.res, err
	}
	ctx, unbind, err := ctl.BindFailoverLease(ctx)
	if err != nil {
		x.res.fail(err, "nothing was changed")
		return x.res, err
	}
	defer unbind()
	committed := false
	for i := range p.Steps {
		st := p.Steps[i]
		if x.finishing && !st.finish {
			x.res.Steps[i].set(StepSkipped, "done by the interrupted failover", 0)
			x.emit(i, StepSkipped, "done by the interrupted failover", 0)
			continue
		}
		x.step = i
		x.emit(i, StepRunning, "", 0)
		t0 := time.Now()
		detail, err := st.run(ctx, x)
		if err == nil && failStep != nil {
			err = failStep(st.ID)
		}
		took := time.Since(t0)
		if err != nil {
			lost := ctl.FailoverLeaseLost()
			if lost != nil {
				err = lost
			}
			x.res.Steps[i].set(StepFailed, errText(err), took)
			x.emit(i, StepFailed, errText(err), took)
			if lost != nil {
				x.res.fail(err, "nothing was undone: another failover may have taken the link over")
				return x.res, fmt.Errorf("failover step %q: %w", st.Title, err)
			}
			if committed {
				x.res.fail(err, "the target already takes writes, so nothing was undone; fix the cause and finish by hand (see the next steps)")
				return x.res, fmt.Errorf("failover step %q: %w", st.Title, err)
			}
			undone := x.undo(ctx, i)
			x.res.fail(err, undone)
			return x.res, fmt.Errorf("failover step %q: %w\n%s", st.Title, err, undone)
		}
		x.res.Steps[i].set(StepDone, detail, took)
		x.emit(i, StepDone, detail, took)
		if st.Commits || x.opened {
			committed = true
		}
		if crashAfter != nil && crashAfter(st.ID) {
			return x.res, errCrashed
		}
	}
	// The end: a failover interrupted before it (its step still "cut")
	// is finished by the next one. With --cleanup the link's state is
	// gone already.
	if !x.opts.Cleanup {
		if err := ctl.SetFailoverStep(ctx, state.FailoverStepDone); err != nil {
			x.res.note("the failover is done, but its end could not be recorded (%v): pglink status may call it interrupted, and pglink failover --planned would only drop what is left", err)
		}
	}
	x.res.finish(x)
	return x.res, nil
}

// undo runs the undo of steps failed..0 in reverse, and says what it did.
func (x *execution) undo(ctx context.Context, failed int) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	var errs []error
	for i := failed; i >= 0; i-- {
		st := x.plan.Steps[i]
		if st.undo == nil {
			continue
		}
		if lost := x.ctl.FailoverLeaseLost(); lost != nil {
			// Another failover may have taken the link over: what is
			// left to undo is for it.
			errs = append(errs, lost)
			break
		}
		t0 := time.Now()
		if err := st.undo(ctx, x); err != nil {
			errs = append(errs, fmt.Errorf("undo %q: %w", st.Title, err))
			x.res.Steps[i].State = StepUndoFailed
			x.emit(i, StepUndoFailed, errText(err), time.Since(t0))
			continue
		}
		if i != failed {
			x.res.Steps[i].State = StepUndone
			x.emit(i, StepUndone, "", time.Since(t0))
		}
	}
	if len(errs) > 0 {
		return fmt.Sprintf("The undo did not complete: %v. Check the source with pglink status and run pglink release-source if it still refuses writes.", errors.Join(errs...))
	}
	if x.plan.Kind == Forced {
		return "Everything was undone: the link is as it was."
	}
	return "Everything was undone: the source takes writes again and the link goes on replicating."
}

func (x *execution) emit(i int, state, detail string, took time.Duration) {
	if x.opts.Progress == nil {
		return
	}
	x.opts.Progress(Event{Step: x.plan.Steps[i], Index: i + 1, Of: len(x.plan.Steps), State: state, Detail: detail, Took: took})
}

// tell reports the running step's progress.
func (x *execution) tell(detail string) { x.emit(x.step, StepRunning, detail, 0) }

func (x *execution) close(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	x.stopHere(ctx)
	if x.lease != nil {
		x.lease()
	}
	if x.src != nil {
		x.src.Close(ctx)
	}
	if x.ctl != nil {
		x.ctl.Close(ctx)
	}
}

// linkHere is the link run by this process for the failover, when no
// other process runs it.
type linkHere struct {
	cancel context.CancelFunc
	done   chan error
}

// runHere starts the link in this process.
func (x *execution) runHere(ctx context.Context) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &linkHere{cancel: cancel, done: make(chan error, 1)}
	cfg := link.Config{Name: x.ctl.Name, Source: x.ctl.Src.ConnString(), Target: x.ctl.Tgt.ConnString(), Logger: x.log}
	go func() { h.done <- link.Run(ctx, cfg) }()
	x.here = h
}

// hereFailed returns the error of the link run here, if it has ended.
func (x *execution) hereFailed() error {
	if x.here == nil {
		return nil
	}
	select {
	case err := <-x.here.done:
		x.here.done <- err
		if err == nil {
			err = errors.New("the link stopped")
		}
		return fmt.Errorf("the link run for the failover ended: %w", err)
	default:
		return nil
	}
}

// stopHere stops the link run here, if any, and waits for it.
func (x *execution) stopHere(ctx context.Context) {
	if x.here == nil {
		return
	}
	x.here.cancel()
	select {
	case <-x.here.done:
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		x.log.Warn("the link run for the failover did not stop within 30s")
	}
	x.here = nil
}

// sourceConn connects to the source, once.
func (x *execution) sourceConn(ctx context.Context) (*pgx.Conn, error) {
	if x.src != nil && !x.src.IsClosed() {
		return x.src, nil
	}
	conn, err := x.ctl.Src.Connect(ctx)
	if err != nil {
		return nil, err
	}
	x.src = conn
	return conn, nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
