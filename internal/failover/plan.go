// Package failover hands a link's writes from the source to the target.
//
// A failover is first built as a Plan: a list of steps, each saying what
// it does, on which side, with which SQL, and how it checks its own
// result. The same plan is shown as a summary, written out as a bash
// script a DBA can read and run by hand, or executed with progress per
// step and a table of results.
//
// A planned failover fences the source (no role or session can write),
// lets the target apply exactly every transaction the source committed,
// optionally validates, sets the target's sequences, makes the target
// writable and cuts the link. A step that fails before the target is
// writable undoes what the earlier steps did: the source is writable
// again and the link goes on replicating. A forced failover, for when the
// source is gone, stops the link and makes the target writable at once,
// and reports how much may be lost.
package failover

import (
	"context"
	"log/slog"
	"time"
)

// Kinds of failover.
const (
	Planned = "planned"
	Forced  = "forced"
)

// Options say which failover to run, and how.
type Options struct {
	Name, Source, Target string
	Kind                 string        // Planned or Forced
	Cleanup              bool          // also drop the publication, the origins and the link's state
	ReleaseSource        bool          // make the source writable again at the end (planned)
	Reverse              bool          // planned: make a reverse link from the target back to the source (failback)
	MaxLag               time.Duration // planned: fence the source only once the link lags less; default 1s
	CatchUpTimeout       time.Duration // planned: how long to wait for the lag to fall under MaxLag; default 5m
	Timeout              time.Duration // planned: how long to wait for the catch-up; default 60s
	Validate             bool          // planned: compare source and target before the target opens
	ValidateJobs         int
	SequenceMargin       int64 // forced: added to each sequence's value taken from the table maxima; default 10000
	Logger               *slog.Logger
	// Progress, when set, is told about each step as it starts and ends.
	Progress func(Event)
}

func (o *Options) defaults() {
	if o.MaxLag == 0 {
		o.MaxLag = time.Second
	}
	if o.CatchUpTimeout == 0 {
		o.CatchUpTimeout = 5 * time.Minute
	}
	if o.Timeout == 0 {
		o.Timeout = time.Minute
	}
	if o.SequenceMargin == 0 {
		o.SequenceMargin = 10000
	}
	if o.ValidateJobs == 0 {
		o.ValidateJobs = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Step is one step of a plan.
type Step struct {
	ID    string // short and stable: preflight, fence, catchup, ...
	Title string // what it does, in a few words
	Side  string // source, target, or both
	What  string // what it does and how it checks itself, in a sentence or two
	// Script is the step as bash with psql, for the script; it uses
	// "$PGLINK_SOURCE" and "$PGLINK_TARGET" and never a secret.
	Script string
	// Commits marks the step after which the failover no longer undoes:
	// the target takes writes.
	Commits bool
	run     func(ctx context.Context, x *execution) (detail string, err error)
	undo    func(ctx context.Context, x *execution) error
	// finish marks the steps that run again when a failover finishes one
	// that was interrupted after it began to make the target writable or
	// to cut the link (see recoverInterrupted); the others are skipped.
	finish bool
}

// Plan is a failover of one link, step by step.
type Plan struct {
	Kind  string
	Link  string
	Opts  Options
	Steps []Step
}

// Event reports a step's progress.
type Event struct {
	Step   Step
	Index  int // 1-based
	Of     int
	State  string // StepRunning, StepDone, StepFailed, StepUndone, StepUndoFailed, StepSkipped
	Detail string
	Took   time.Duration
}

// Step states.
const (
	StepRunning    = "running"
	StepDone       = "done"
	StepFailed     = "failed"
	StepUndone     = "undone"
	StepUndoFailed = "undo failed"
	StepSkipped    = "not run"
)

// Build makes the plan for opts. It connects to nothing: the plan is the
// same for a script and for a run.
func Build(opts Options) (*Plan, error) {
	opts.defaults()
	if err := checkOptions(opts); err != nil {
		return nil, err
	}
	p := &Plan{Kind: opts.Kind, Link: opts.Name, Opts: opts}
	if opts.Kind == Planned {
		p.Steps = plannedSteps(opts)
	} else {
		p.Steps = forcedSteps(opts)
	}
	return p, nil
}
