// Command bench measures pglink against the tools its users would pick
// instead: pgcopydb and pg_dump/pg_restore for seeding, PostgreSQL's own
// logical replication for catching up and for live lag; and pglink's own
// cutover downtime, memory on huge transactions and validation speed. It
// starts two local PostgreSQL servers, fills the source with pgbench data,
// and writes a Markdown table to bench/results. Everything it starts it
// stops, also on Ctrl-C and on error. See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/pglink/pglink/internal/instance"
)

type config struct {
	pglink     string
	scale      int
	runs       int
	jobs       int
	quick      bool
	resultsDir string
	profileDir string
	only       string
	variants   string // figure 2b: only the variants whose names hold one of these, comma-separated
	pglinkArgs string // more flags of every pglink start, space-separated

	seedScales []int           // figure 1's pgbench scales
	backlogs   []time.Duration // figure 2's pgbench backlogs
	lagFor     time.Duration   // figure 3's pgbench
	lagRate    int
	bigRows    []int // figure 5's transaction sizes
	applyTxns  int   // figure 2b's backlog
	cutoverFor time.Duration
	idleLinks  int           // figure 7's links in one pglink serve
	idleFor    time.Duration // figure 7's idle and loaded phases
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&c.pglink, "pglink", "bin/pglink", "the pglink binary to measure")
	fs.IntVar(&c.scale, "scale", 50, "pgbench scale of the source data (50: about 750 MB)")
	fs.IntVar(&c.runs, "runs", 3, "runs of each figure; the report gives medians")
	fs.IntVar(&c.jobs, "jobs", runtime.NumCPU(), "parallel jobs of every seeding tool and of pglink validate")
	fs.BoolVar(&c.quick, "quick", false, "scale 5, 1 run, shorter phases: a check in a few minutes")
	fs.StringVar(&c.resultsDir, "results", "bench/results", "where the Markdown report goes")
	fs.StringVar(&c.profileDir, "profile", "", "write CPU and allocation profiles of every pglink process here")
	fs.StringVar(&c.only, "only", "", "comma-separated figures to run: seed (1 and 6), catchup (2), apply (2b), lag (3), cutover (4), memory (5), idle (7); default all")
	fs.IntVar(&c.idleLinks, "idle-links", 100, "figure 7: links in one pglink serve process")
	scales := fs.String("seed-scales", "", "figure 1: comma-separated pgbench scales to seed (default 5,20,50,200; --quick: --scale)")
	backlogs := fs.String("backlogs", "", "figure 2: comma-separated backlog lengths (default 10s,30s,120s; --quick: 10s)")
	fs.StringVar(&c.variants, "variants", "", "figure 2b: only the variants whose names contain one of these comma-separated words; default all")
	fs.StringVar(&c.pglinkArgs, "pglink-flags", "", "more flags of every pglink start, space-separated, like '--binary off'")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.lagFor, c.lagRate, c.cutoverFor = 60*time.Second, 1000, 30*time.Second
	defScales, defBacklogs := "5,20,50,200", "10s,30s,120s"
	c.bigRows = []int{1_000_000, 2_000_000}
	c.applyTxns = 20000
	c.idleFor = time.Minute
	if c.quick {
		if !set["scale"] {
			c.scale = 5
		}
		if !set["runs"] {
			c.runs = 1
		}
		c.lagFor, c.cutoverFor = 15*time.Second, 15*time.Second
		defScales, defBacklogs = "", "10s"
		c.bigRows = []int{200_000, 400_000}
		c.applyTxns = 5000
		c.idleFor = 20 * time.Second
		if !set["idle-links"] {
			c.idleLinks = 10
		}
	}
	if *scales == "" {
		*scales = defScales
	}
	if *backlogs == "" {
		*backlogs = defBacklogs
	}
	var err error
	if *scales == "" { // --quick: the main scale only
		c.seedScales = []int{c.scale}
	} else if c.seedScales, err = parseScales(*scales); err != nil {
		return c, err
	}
	if c.backlogs, err = parseDurations(*backlogs); err != nil {
		return c, err
	}
	if c.runs < 1 || c.scale < 1 || c.jobs < 1 || c.idleLinks < 1 {
		return c, errors.New("--runs, --scale, --jobs and --idle-links must be positive")
	}
	for _, f := range strings.Split(c.only, ",") {
		switch strings.TrimSpace(f) {
		case "", "seed", "catchup", "apply", "lag", "cutover", "memory", "idle":
		default:
			return c, fmt.Errorf("--only: unknown figure %q", f)
		}
	}
	return c, nil
}

func (c config) wants(figure string) bool {
	if c.only == "" {
		return true
	}
	for _, f := range strings.Split(c.only, ",") {
		if strings.TrimSpace(f) == figure {
			return true
		}
	}
	return false
}

func (c config) mode() string {
	if c.quick {
		return "quick"
	}
	return "full"
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = runBench(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// runBench runs the figures and writes the report, also the part measured
// before an error or Ctrl-C.
func runBench(ctx context.Context, cfg config) (err error) {
	bin, err := filepath.Abs(cfg.pglink)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("pglink binary: %w (run make build, or give --pglink)", err)
	}
	if cfg.profileDir != "" {
		if cfg.profileDir, err = filepath.Abs(cfg.profileDir); err != nil {
			return err
		}
		if err := ensureDir(cfg.profileDir); err != nil {
			return err
		}
	}
	pg := pglinkCmd{bin: bin, profileDir: cfg.profileDir, args: strings.Fields(cfg.pglinkArgs)}
	reapOrphans()
	res := &results{Started: time.Now(), Mode: cfg.mode(), Scale: cfg.scale, Runs: cfg.runs, Jobs: cfg.jobs,
		Machine: machine(), Pglink: pg.version(ctx), Pgcopydb: pgcopydbVersion(ctx),
		Settings: "fsync on, synchronous_commit on, full_page_writes on, shared_buffers 256MB"}

	var servers []*server
	defer func() {
		killAll()
		for _, s := range servers {
			if rerr := s.remove(); rerr != nil && err == nil {
				err = rerr
			}
		}
	}()
	logf("starting the source and target servers")
	for range 2 {
		s, err := startServer(ctx, durableSettings)
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	src, tgt := servers[0].Instance, servers[1].Instance
	defer func() {
		if werr := writeReport(cfg, res, err); werr != nil && err == nil {
			err = werr
		}
	}()
	if res.Postgres, err = serverVersion(ctx, src); err != nil {
		return err
	}
	logf("pgbench -i at scale %d", cfg.scale)
	const db = "bench"
	if err := createDB(ctx, src, db); err != nil {
		return err
	}
	if err := pgbenchInit(ctx, src, db, cfg.scale); err != nil {
		return err
	}
	if res.DBSize, err = dbSize(ctx, src, db); err != nil {
		return err
	}
	logf("warming the target's WAL")
	if err := warmWAL(ctx, tgt, int64(cfg.scale)*32<<20); err != nil { // twice the data: about 15 MB per scale unit
		return err
	}
	figures := []struct {
		name string
		run  func() error
	}{
		{"seed", func() error { return figSeeding(ctx, cfg, pg, src, tgt, db, res) }},
		{"catchup", func() error { return figReplicas(ctx, cfg, pg, src, tgt, db, res) }},
		{"apply", func() error { return figApply(ctx, cfg, tgt, res) }},
		{"memory", func() error { return figMemory(ctx, cfg, pg, src, tgt, res) }},
		{"cutover", func() error { return figCutover(ctx, cfg, pg, src, tgt, res) }},
		{"idle", func() error { return figIdle(ctx, cfg, pg, res) }},
	}
	for _, f := range figures {
		if f.name == "catchup" && !cfg.wants("catchup") && !cfg.wants("lag") {
			continue
		}
		if f.name != "catchup" && !cfg.wants(f.name) {
			continue
		}
		if err := f.run(); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			logf("%s failed: %v", f.name, err)
			res.Errors = append(res.Errors, f.name+": "+err.Error())
		}
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d figure(s) failed; see the report", len(res.Errors))
	}
	return nil
}

func figReplicas(ctx context.Context, cfg config, pg pglinkCmd, src, tgt *instance.Instance, db string, res *results) (err error) {
	r := newReplicas(pg, src, tgt, db, cfg.jobs)
	defer func() {
		if terr := r.teardown(context.WithoutCancel(ctx)); terr != nil && err == nil {
			err = terr
		}
	}()
	logf("figures 2 and 3: seeding the pglink target and the native subscription")
	tables := append(append([]string{}, pgbenchTables...), "bench_marker")
	if err := r.setup(ctx, tables, 2*time.Hour); err != nil {
		return err
	}
	res.Replicas = &replicasSetup{PglinkSeed: r.PglinkSeed, NativeSync: r.NativeSync}
	if cfg.wants("catchup") {
		if err := catchUpSizes(ctx, cfg, r, res); err != nil {
			return err
		}
		if err := sameRows(ctx, r); err != nil {
			return err
		}
	}
	if cfg.wants("lag") {
		w := workload{Clients: 4, Duration: cfg.lagFor, Rate: cfg.lagRate}
		res.LagLoad = w
		for i := range cfg.runs {
			logf("figure 3, run %d of %d: %d txn/s for %s", i+1, cfg.runs, w.Rate, w.Duration)
			l, err := r.liveLag(ctx, w, i%2 == 0, profileName(cfg, "lag", i))
			if err != nil {
				return err
			}
			logf("  p99 pglink %.0f ms (applied %.0f ms), native %.0f ms (applied %.0f ms)", ms(l.Pglink.P99), ms(l.Pglink.AppliedP99), ms(l.Native.P99), ms(l.Native.AppliedP99))
			res.Lag = append(res.Lag, l)
		}
	}
	return nil
}

// sameRows checks that both targets hold what the source holds, table by
// table (counts and sums), after the catch-ups: a fast but wrong apply
// would not count.
func sameRows(ctx context.Context, r *replicas) error {
	for _, t := range []string{"pgbench_history", "pgbench_branches", "pgbench_tellers"} {
		want, err := tableSum(ctx, r.link.src, r.link.srcDB, t)
		if err != nil {
			return err
		}
		for _, target := range []string{r.link.tgtDB, r.sub.tgtDB} {
			got, err := tableSum(ctx, r.link.tgt, target, t)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s in %s: %s, source: %s", t, target, got, want)
			}
		}
	}
	return nil
}

func tableSum(ctx context.Context, inst *instance.Instance, db, table string) (string, error) {
	conn, err := connect(ctx, inst, db)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	col := map[string]string{"pgbench_history": "delta", "pgbench_branches": "bbalance", "pgbench_tellers": "tbalance"}[table]
	var s string
	err = conn.QueryRow(ctx, fmt.Sprintf("SELECT count(*) || ' rows, sum ' || coalesce(sum(%s), 0) FROM %s", col, table)).Scan(&s)
	return s, err
}

func figApply(ctx context.Context, cfg config, tgt *instance.Instance, res *results) error {
	reps := max(cfg.runs, 3)
	logf("figure 2b: the apply alone, %d pgbench transactions at scale %d, %d times each way", cfg.applyTxns, cfg.scale, reps)
	variants := applyVariants()
	if cfg.variants != "" {
		var some []applyVariant
		for _, v := range variants {
			for _, w := range strings.Split(cfg.variants, ",") {
				if strings.Contains(v.Name, w) {
					some = append(some, v)
					break
				}
			}
		}
		if len(some) == 0 {
			return fmt.Errorf("--variants %q: no figure 2b variant has such a name", cfg.variants)
		}
		variants = some
	}
	out, err := applyExperiment(ctx, tgt, cfg.scale, cfg.applyTxns, reps, variants)
	if err != nil {
		return err
	}
	res.ApplyExp = out
	for _, runs := range out {
		logf("  %s: %.0f txn/s", runs[0].Name, collect(runs, applyResult.TPS).median())
	}
	return nil
}

func figMemory(ctx context.Context, cfg config, pg pglinkCmd, src, tgt *instance.Instance, res *results) (err error) {
	b := newBigTxn(pg, src, tgt)
	defer func() {
		if terr := b.teardown(context.WithoutCancel(ctx)); terr != nil && err == nil {
			err = terr
		}
	}()
	if err := b.setup(ctx); err != nil {
		return err
	}
	for i := range cfg.runs {
		var runs []bigTxnRun
		for _, rows := range cfg.bigRows {
			logf("figure 5, run %d of %d: one transaction of %d rows", i+1, cfg.runs, rows)
			r, err := b.run(ctx, rows, profileName(cfg, fmt.Sprintf("memory-%d", rows), i))
			if err != nil {
				return err
			}
			logf("  peak RSS %.0f MB, applied in %.1fs", mb(r.PeakRSS), secs(r.Apply))
			runs = append(runs, r)
		}
		res.Memory = append(res.Memory, runs)
	}
	return nil
}

// figCutover measures figure 4 under pgbench at a steady rate, then under
// the demo's load: its shop workload, four sessions writing as fast as
// they can.
func figCutover(ctx context.Context, cfg config, pg pglinkCmd, src, tgt *instance.Instance, res *results) error {
	w := workload{Clients: 4, Duration: cfg.cutoverFor, Rate: 500}
	for _, shop := range []bool{false, true} {
		for i := range cfg.runs {
			what, into := "pgbench at 500 txn/s", &res.Cutover
			if shop {
				what, into = "the demo's unthrottled load", &res.CutoverFull
			}
			logf("figure 4, run %d of %d: planned failover under %s", i+1, cfg.runs, what)
			r, err := newCutover(pg, src, tgt, i).run(ctx, w, shop)
			if errors.Is(err, errNoFailover) {
				res.CutoverNote = err.Error()
				logf("  %v", err)
				return nil
			}
			if err != nil {
				return err
			}
			logf("  downtime %.2fs, command %.1fs", secs(r.Downtime), secs(r.Total))
			*into = append(*into, r)
		}
	}
	return nil
}

func profileName(cfg config, figure string, run int) string {
	if cfg.profileDir == "" {
		return ""
	}
	return fmt.Sprintf("%s-run%d", figure, run+1)
}

// writeReport writes the Markdown report (and the raw figures as JSON next
// to it), named after the start time and mode.
func writeReport(cfg config, res *results, runErr error) error {
	if runErr != nil && !errors.Is(runErr, context.Canceled) && len(res.Errors) == 0 {
		res.Errors = append(res.Errors, runErr.Error())
	}
	if err := os.MkdirAll(cfg.resultsDir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(cfg.resultsDir, res.Started.Format("2006-01-02-1504")+"-"+res.Mode)
	f, err := os.Create(base + ".md")
	if err != nil {
		return err
	}
	res.render(f)
	if err := f.Close(); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", raw, 0o644); err != nil {
		return err
	}
	logf("report: %s.md", base)
	return nil
}

// machine describes the CPU and memory.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown memory"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			var kb int64
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				mem = fmt.Sprintf("%.1f GiB memory", float64(kb)/(1<<20))
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s, %s/%s", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH)
}

func serverVersion(ctx context.Context, inst *instance.Instance) (string, error) {
	conn, err := connect(ctx, inst, "postgres")
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var v string
	err = conn.QueryRow(ctx, `SHOW server_version`).Scan(&v)
	return v, err
}

func dbSize(ctx context.Context, inst *instance.Instance, db string) (string, error) {
	conn, err := connect(ctx, inst, db)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var v string
	err = conn.QueryRow(ctx, `SELECT pg_size_pretty(pg_database_size(current_database()))`).Scan(&v)
	return v, err
}

func pgcopydbVersion(ctx context.Context) string {
	p, err := exec.LookPath("pgcopydb")
	if err != nil {
		return "not installed"
	}
	out, err := exec.CommandContext(ctx, p, "--version").CombinedOutput()
	if err != nil {
		return "unknown version"
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "pgcopydb version") {
			return strings.TrimPrefix(line, "pgcopydb version ")
		}
	}
	return "unknown version"
}
