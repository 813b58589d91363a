package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// results is everything one benchmark run measured, rendered as Markdown.
type results struct {
	Started  time.Time
	Mode     string // "full" or "quick"
	Machine  string
	Postgres string
	Pglink   string
	Pgcopydb string
	Scale    int
	Runs     int
	Jobs     int
	DBSize   string
	Settings string

	Seeding     []seedSize // figure 1, per scale
	SeedNote    string
	Replicas    *replicasSetup
	Catchup     []backlogSize // figure 2, per backlog
	CatchupNote string
	ApplyExp    [][]applyResult
	Lag         []liveLag
	LagNote     string
	LagLoad     workload
	Cutover     []cutoverRun
	// CutoverFull is figure 4 under the demo's unthrottled load.
	CutoverFull []cutoverRun
	CutoverNote string
	Memory      [][]bigTxnRun // per run, one per size
	MemoryNote  string
	Idle        []idleRun
	Errors      []string
}

type replicasSetup struct {
	PglinkSeed, NativeSync time.Duration
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// series renders values with a unit, and their median.
type series []float64

func (s series) median() float64 { return median(s) }

func (s series) list(format string) string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprintf(format, v)
	}
	return strings.Join(parts, ", ")
}

func collect[T any](runs []T, f func(T) float64) series {
	out := make(series, len(runs))
	for i, r := range runs {
		out[i] = f(r)
	}
	return out
}

func secs(d time.Duration) float64 { return d.Seconds() }
func ms(d time.Duration) float64   { return float64(d) / float64(time.Millisecond) }
func mb(b int64) float64           { return float64(b) / (1 << 20) }

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

func (r *results) render(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# pglink benchmarks: %s (%s mode)\n\n", r.Started.Format("2006-01-02 15:04"), r.Mode)
	p("- Machine: %s\n", r.Machine)
	p("- PostgreSQL: %s; two local instances on this machine (source and target), 127.0.0.1, %s\n", r.Postgres, r.Settings)
	p("- %s; pgcopydb: %s\n", r.Pglink, r.Pgcopydb)
	p("- Data: pgbench scale %d (%s) for figures 2 to 5, figure 1 at the scales it names; %d run(s), figures are medians; %d jobs for every tool\n", r.Scale, r.DBSize, r.Runs, r.Jobs)
	p("- Every comparison is made side by side within each run (the order of the tools turns from run to run); ratios are medians of the per-run ratios.\n\n")
	r.renderSeeding(p)
	r.renderCatchup(p)
	r.renderApply(p)
	r.renderLag(p)
	r.renderCutover(p)
	r.renderMemory(p)
	r.renderValidate(p)
	r.renderIdle(p)
	if len(r.Errors) > 0 {
		p("## Errors\n\n")
		for _, e := range r.Errors {
			p("```\n%s\n```\n\n", strings.TrimSpace(e))
		}
	}
}

type printer func(format string, args ...any)

func (r *results) renderApply(p printer) {
	if len(r.ApplyExp) == 0 {
		return
	}
	p("## 2b. The apply alone\n\n")
	p("The same synthetic backlog of %d pgbench transactions (as the stream hands them over: three updates and an insert\n", r.ApplyExp[0][0].Txns)
	p("each) applied by pglink's apply (`internal/apply`), as is and with one setting changed, to fresh copies of one\n")
	p("pgbench database on the target server, in this process, without source or stream; %d times each way, in turn.\n", len(r.ApplyExp[0]))
	p("Balances and history are checked after each.\n\n")
	p("| apply | time, median | txn/s, median | target CPU s, median | pglink CPU s, median |\n| --- | --- | --- | --- | --- |\n")
	for _, runs := range r.ApplyExp {
		p("| %s | %.2f s | %.0f | %.2f | %.2f |\n", runs[0].Name,
			collect(runs, func(a applyResult) float64 { return secs(a.Elapsed) }).median(),
			collect(runs, applyResult.TPS).median(),
			collect(runs, func(a applyResult) float64 { return secs(a.TargetCPU) }).median(),
			collect(runs, func(a applyResult) float64 { return secs(a.ClientCPU) }).median())
	}
	p("\n")
}

func (r *results) renderLag(p printer) {
	p("## 3. Live lag\n\n")
	if len(r.Lag) == 0 {
		p("Not measured. %s\n\n", r.LagNote)
		return
	}
	w := r.LagLoad
	p("pgbench at a steady %d txn/s (%d clients) for %.0f s while linked; each replica alone (the other stopped). Every 100 ms\n",
		w.Rate, w.Clients, w.Duration.Seconds())
	p("the source's slot (`confirmed_flush_lsn`) and the target's replication origin (the last source commit applied) are read;\n")
	p("the source's WAL position is read every 10 ms, and a position's lag is the time since the source's WAL reached it.\n\n")
	p("| | view | p50 | p99 | max | samples |\n| --- | --- | --- | --- | --- | --- |\n")
	row := func(name, view string, f func(liveLag) lagStats, applied bool) {
		get := func(g func(lagStats) time.Duration) series {
			return collect(r.Lag, func(l liveLag) float64 { return ms(g(f(l))) })
		}
		var p50, p99, mx series
		if applied {
			p50, p99, mx = get(func(s lagStats) time.Duration { return s.AppliedP50 }), get(func(s lagStats) time.Duration { return s.AppliedP99 }), get(func(s lagStats) time.Duration { return s.AppliedMax })
		} else {
			p50, p99, mx = get(func(s lagStats) time.Duration { return s.P50 }), get(func(s lagStats) time.Duration { return s.P99 }), get(func(s lagStats) time.Duration { return s.Max })
		}
		n := collect(r.Lag, func(l liveLag) float64 { return float64(f(l).Samples) })
		p("| %s | %s | %.0f ms | %.0f ms (runs: %s) | %.0f ms | %.0f |\n", name, view, p50.median(), p99.median(), p99.list("%.0f"), mx.median(), n.median())
	}
	pgl := func(l liveLag) lagStats { return l.Pglink }
	nat := func(l liveLag) lagStats { return l.Native }
	row("pglink", "source (confirmed_flush_lsn)", pgl, false)
	row("pglink", "target (applied)", pgl, true)
	row("native subscription", "source (confirmed_flush_lsn)", nat, false)
	row("native subscription", "target (applied)", nat, true)
	p99src := collect(r.Lag, func(l liveLag) float64 { return ms(l.Pglink.P99) }).median()
	p99tgt := collect(r.Lag, func(l liveLag) float64 { return ms(l.Pglink.AppliedP99) }).median()
	rate := collect(r.Lag, func(l liveLag) float64 { return l.PglinkLoad.TPS }).median()
	p("\nSource rate reached: %.0f txn/s. CPU s while pglink ran (source / target / pglink), median: %.1f / %.1f / %.1f.\n",
		rate, collect(r.Lag, func(l liveLag) float64 { return secs(l.PglinkCPU.Source) }).median(),
		collect(r.Lag, func(l liveLag) float64 { return secs(l.PglinkCPU.Target) }).median(),
		collect(r.Lag, func(l liveLag) float64 { return secs(l.PglinkCPU.Client) }).median())
	p("Target: p99 under 100 ms: from the source's view %s (%.0f ms); on the target %s (%.0f ms).\n\n",
		verdict(p99src < 100), p99src, verdict(p99tgt < 100), p99tgt)
	if r.LagNote != "" {
		p("%s\n\n", r.LagNote)
	}
}

func (r *results) renderCutover(p printer) {
	p("## 4. Cutover\n\n")
	if len(r.Cutover) == 0 {
		p("%s\n\n", r.CutoverNote)
		return
	}
	d := collect(r.Cutover, func(c cutoverRun) float64 { return secs(c.Downtime) })
	t := collect(r.Cutover, func(c cutoverRun) float64 { return secs(c.Total) })
	p("Planned failover (`pglink failover --planned --yes --json`) while pgbench writes: downtime as pglink reports it\n")
	p("(`downtime_seconds`), median **%.2f s** (runs: %s); the whole command %.1f s (runs: %s).\n\n", d.median(), d.list("%.2f"), t.median(), t.list("%.1f"))
	if len(r.CutoverFull) > 0 {
		d := collect(r.CutoverFull, func(c cutoverRun) float64 { return secs(c.Downtime) })
		t := collect(r.CutoverFull, func(c cutoverRun) float64 { return secs(c.Total) })
		p("Under the demo's load (its shop, four sessions writing as fast as they can for 15 s, as in `make demo`): downtime median\n")
		p("**%.2f s** (runs: %s); the whole command %.1f s (runs: %s), which waits for the lag to fall under\n", d.median(), d.list("%.2f"), t.median(), t.list("%.1f"))
		p("`--max-lag` (1 s) before it fences the source. Target: under 1 s.\n\n")
	}
}

func (r *results) renderMemory(p printer) {
	p("## 5. Memory\n\n")
	if len(r.Memory) == 0 {
		p("Not measured. %s\n\n", r.MemoryNote)
		return
	}
	p("Peak resident memory (VmHWM) of a fresh `pglink start` process that applies one source transaction\n")
	p("(`INSERT ... SELECT` of N rows of about 60 bytes); apply time from the source's commit until the target holds it.\n\n")
	p("| rows | peak RSS, median | runs | RSS once streaming | apply time, median | rows/s | CPU s (source / target / pglink) |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	sizes := len(r.Memory[0])
	var peaks []float64
	for k := 0; k < sizes; k++ {
		var runs []bigTxnRun
		for _, m := range r.Memory {
			if k < len(m) {
				runs = append(runs, m[k])
			}
		}
		peak := collect(runs, func(b bigTxnRun) float64 { return mb(b.PeakRSS) })
		startRSS := collect(runs, func(b bigTxnRun) float64 { return mb(b.StartRSS) })
		apply := collect(runs, func(b bigTxnRun) float64 { return secs(b.Apply) })
		rate := collect(runs, func(b bigTxnRun) float64 { return float64(b.Rows) / b.Apply.Seconds() })
		p("| %d | %.0f MB | %s | %.0f MB | %.1f s | %.0f | %.1f / %.1f / %.1f |\n", runs[0].Rows, peak.median(), peak.list("%.0f"),
			startRSS.median(), apply.median(), rate.median(),
			collect(runs, func(b bigTxnRun) float64 { return secs(b.CPU.Source) }).median(),
			collect(runs, func(b bigTxnRun) float64 { return secs(b.CPU.Target) }).median(),
			collect(runs, func(b bigTxnRun) float64 { return secs(b.CPU.Client) }).median())
		peaks = append(peaks, peak.median())
	}
	maxPeak := slices.Max(peaks)
	growth := peaks[len(peaks)-1] / peaks[0]
	p("\nTarget: under 300 MB: %s (largest %.0f MB); not growing with the transaction size: %s (%.2fx the memory for %dx the rows).\n\n",
		verdict(maxPeak < 300), maxPeak, verdict(growth < 1.25), growth, r.Memory[0][sizes-1].Rows/r.Memory[0][0].Rows)
}

func (r *results) renderIdle(p printer) {
	if len(r.Idle) == 0 {
		return
	}
	p("## 7. Many links in one process\n\n")
	p("`pglink serve` runs N links, each from a small database of its own (one table of 100 rows) on one source server\n")
	p("into one of its own on one target server (`jobs: 1`, `apply-sessions: 1`). Memory is the process's VmRSS once\n")
	p("every link replicates and is idle; CPU is its share of one core, idle and then while each source database takes\n")
	p("one insert per second; lag is every link's `pglink_lag_seconds`, read from `/metrics` each second under that load,\n")
	p("and, seen on the target, the age of the oldest insert whose row each target database does not show yet, read each\n")
	p("second. The servers' CPU and the machine's load average (1, 5, 15 minutes) are at the end of each phase.\n")
	p("Targets: under 10 MB and 1%% of a core per idle link, lag p99 under 1 s.\n\n")
	p("| links | ready after | RSS | per link | CPU per idle link | CPU per loaded link | lag p99 | lag max | seen on the target p99 / max | servers' CPU idle / loaded (source, target) | load average idle / loaded |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range r.Idle {
		seen := fmt.Sprintf("%.2f / %.2f s", secs(x.SeenP99), secs(x.SeenMax))
		if x.SeenSamples == 0 {
			seen = "not measured (see the log)"
		}
		p("| %d | %.0f s | %.0f MB | %.2f MB %s | %.3f%% %s | %.3f%% | %.2f s %s | %.2f s | %s | %.0f%%, %.0f%% / %.0f%%, %.0f%% | %s / %s |\n", x.Links, secs(x.Ready), mb(x.RSS),
			x.RSSPerLink(), verdict(x.RSSPerLink() < 10), x.CPUPerLink(), verdict(x.CPUPerLink() < 1), x.LoadCPUPerLink(),
			secs(x.LagP99), verdict(x.LagP99 < time.Second), secs(x.LagMax), seen,
			100*x.SrcIdleCPU, 100*x.TgtIdleCPU, 100*x.SrcLoadCPU, 100*x.TgtLoadCPU, x.LoadAvgIdle, x.LoadAvgLoaded)
	}
	p("\n")
}
