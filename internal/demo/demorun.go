package demo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/compare"
	"github.com/pglink/pglink/internal/failover"
	"github.com/pglink/pglink/internal/link"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/termui"
)

// Time limits of the demo's waits: past them something is wrong, and the
// demo says so instead of hanging.
const catchUpTimeout = time.Minute

// runLink starts the workload and the link, shows seeding and live lag,
// then fails over while the workload writes: the fence stops the
// workload, the target catches up, and the link's process ends by itself.
func (d *demo) runLink(ctx context.Context) error {
	workCtx, stopWork := context.WithCancel(ctx)
	work := NewWorkload(d.srcURL, d.opts.Clients)
	workload := background(func() error { return work.Run(workCtx) })
	// Whatever happens, nothing may still run when the instances go away.
	defer func() { stopWork(); workload.wait() }()

	linkCtx, stopLink := context.WithCancel(ctx)
	running := background(func() error {
		return link.Run(linkCtx, link.Config{Name: linkName, Source: d.srcURL, Target: d.tgtURL,
			Schema: link.SchemaCopy, Logger: d.opts.Logger})
	})
	defer func() { stopLink(); running.wait() }()
	d.say("link %s started with a workload of %d sessions writing to the source", linkName, d.opts.Clients)

	w := watch{d: d, link: running, workload: workload}
	if err := w.untilReplicating(ctx); err != nil {
		return err
	}
	if err := w.live(ctx, d.opts.Live); err != nil {
		return err
	}
	if err := d.failover(ctx, work); err != nil {
		return err
	}
	if err := workload.wait(); err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	w.workload = nil
	if err := running.wait(); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	d.say("the link's process has stopped by itself")
	return nil
}

// failover runs a planned failover while the workload writes, with
// progress per step and the results table.
func (d *demo) failover(ctx context.Context, work *Workload) error {
	d.say("planned failover while %d sessions write to the source", d.opts.Clients)
	work.ExpectFence()
	plan, err := failover.Build(failover.Options{Name: linkName, Source: d.srcURL, Target: d.tgtURL,
		Kind: failover.Planned, Cleanup: true, MaxLag: d.opts.MaxLag, Timeout: catchUpTimeout, Logger: d.opts.Logger,
		Progress: func(e failover.Event) {
			if e.State != failover.StepRunning {
				d.say("  [%d/%d] %s: %s %s", e.Index, e.Of, e.Step.Title, e.State, e.Detail)
			}
		}})
	if err != nil {
		return err
	}
	res, err := failover.Run(ctx, plan)
	fmt.Fprintln(d.out)
	if werr := res.WriteTable(d.out); werr != nil {
		return werr
	}
	fmt.Fprintln(d.out)
	if err != nil {
		return fmt.Errorf("failover: %w", err)
	}
	d.say("the workload committed %d transactions on the source before the fence", work.Committed())
	return nil
}

// task is a function running in its own goroutine.
type task struct {
	done chan struct{}
	err  error
}

func background(f func() error) *task {
	t := &task{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		t.err = f()
	}()
	return t
}

// wait returns the function's error once it has returned; it may be
// called any number of times.
func (t *task) wait() error {
	<-t.done
	return t.err
}

// exited is closed when the task has returned; nil for no task, which a
// select never picks.
func (t *task) exited() <-chan struct{} {
	if t == nil {
		return nil
	}
	return t.done
}

// watch polls the link's status while the link and the workload run, and
// fails as soon as either of them does.
type watch struct {
	d         *demo
	lastError string // shown once until it changes
	link      *task
	workload  *task // nil once stopped on purpose
}

// poll calls check every second until it reports done, ctx ends, the
// deadline passes, or the link or the workload stops on its own.
func (w *watch) poll(ctx context.Context, limit time.Duration, what string, check func(*report.Status) bool) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var brokenSince time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.link.exited():
			return fmt.Errorf("the link stopped while %s: %w", what, errOrUnexpected(w.link.err))
		case <-w.workload.exited():
			return fmt.Errorf("the workload stopped while %s: %w", what, errOrUnexpected(w.workload.err))
		case <-tick.C:
		}
		st, err := w.d.status(ctx)
		if err != nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %w", what, err)
			}
			continue
		}
		if check(st) {
			return nil
		}
		if st.Phase != state.PhaseBroken {
			brokenSince = time.Time{}
		} else if brokenSince.IsZero() {
			brokenSince = time.Now()
		}
		if !brokenSince.IsZero() && time.Since(brokenSince) > w.d.opts.BrokenTimeout {
			return fmt.Errorf("%s: the link has been broken for %s: %s", what, w.d.opts.BrokenTimeout, st.LastError)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not done after %s (phase %s, last error: %s)", what, limit, st.Phase, st.LastError)
		}
	}
}

func errOrUnexpected(err error) error {
	if err == nil {
		return errors.New("returned without error before being asked to stop")
	}
	return err
}

// untilReplicating shows seeding progress until the link replicates.
func (w *watch) untilReplicating(ctx context.Context) error {
	return w.poll(ctx, w.d.opts.SeedTimeout, "seeding", func(st *report.Status) bool {
		var copied, rows int64
		for _, t := range st.Tables {
			rows += t.RowsCopied
			if t.State == state.TableCopied {
				copied++
			}
		}
		w.d.say("%-11s tables copied %d/%d, rows %s%s", st.Phase, copied, len(st.Tables), termui.Count(rows), w.problem(st))
		return st.Phase == state.PhaseReplicating
	})
}

// live shows the lag while the workload writes, for d.
func (w *watch) live(ctx context.Context, d time.Duration) error {
	end := time.Now().Add(d)
	err := w.poll(ctx, d+10*time.Second, "replicating", func(st *report.Status) bool {
		w.d.say("%-11s lag %s, %.0f txn/s, %.0f changes/s applied%s", st.Phase, lag(st),
			st.ApplyTxnPerSec, st.ApplyChangePerSec, w.problem(st))
		return time.Now().After(end)
	})
	return err
}

// once per distinct error.
func (w *watch) problem(st *report.Status) string {
	if st.Phase != state.PhaseBroken || st.LastError == "" || st.LastError == w.lastError {
		return ""
	}
	w.lastError = st.LastError
	s := "\n          error: " + st.LastError
	if st.Remedy != "" {
		s += "\n          remedy: " + st.Remedy
	}
	return s
}

func lag(st *report.Status) string {
	s := "unknown"
	if st.LagBytes != nil {
		s = termui.Bytes(*st.LagBytes)
	}
	if st.LagSeconds != nil {
		s += fmt.Sprintf(" / %.1f s", *st.LagSeconds)
	}
	return s
}

// verify compares both sides row by row after the failover, and prints a
// table per table.
func (d *demo) verify(ctx context.Context) error {
	src, err := pgx.Connect(ctx, d.srcURL)
	if err != nil {
		return fmt.Errorf("connect to the source: %w", err)
	}
	defer src.Close(context.WithoutCancel(ctx))
	dst, err := pgx.Connect(ctx, d.tgtURL)
	if err != nil {
		return fmt.Errorf("connect to the target: %w", err)
	}
	defer dst.Close(context.WithoutCancel(ctx))
	res, err := compare.Databases(ctx, src, dst)
	if err != nil {
		return fmt.Errorf("compare source and target: %w", err)
	}
	d.printComparison(res)
	if !res.Equal() {
		return fmt.Errorf("source and target differ:\n%s", res)
	}
	d.say("source and target are identical: %d tables, %s rows", res.Tables, termui.Count(res.Rows))
	return nil
}

func (d *demo) printComparison(res compare.Result) {
	diffs := map[string]compare.Diff{}
	for _, df := range res.Diffs {
		diffs[df.Table] = df
	}
	tw := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "table\trows\tmissing\textra\tdifferent\tresult\t")
	for _, name := range sortedNames(res.Counts) {
		df, bad := diffs[name]
		result := "identical"
		if bad {
			result = "DIFFERENT"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t\n", name, termui.Count(res.Counts[name]), df.Missing, df.Extra, df.Different, result)
	}
	for _, name := range res.OnlySource {
		fmt.Fprintf(tw, "%s\t\t\t\t\tonly on the source\t\n", name)
	}
	for _, name := range res.OnlyTarget {
		fmt.Fprintf(tw, "%s\t\t\t\t\tonly on the target\t\n", name)
	}
	tw.Flush()
}

func sortedNames(m map[string]int64) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
