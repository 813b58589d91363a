package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/instance"
	"github.com/pglink/pglink/internal/wait"
)

// idleRun is figure 7: many small links in one pglink serve process, idle
// and then under a light write load.
type idleRun struct {
	Links   int
	Ready   time.Duration // from serve's start until every link replicates
	RSS     int64         // resident memory of the process once idle (VmRSS)
	IdleCPU float64       // share of one core the process used while idle
	LoadCPU float64       // ... and under the light load
	LagP99  time.Duration // over every link's lag sampled each second under the load
	LagMax  time.Duration
	// The same seen from the target's data: each second, the age of the
	// oldest insert (since its INSERT returned) whose row the link's
	// target database does not show yet, 0 when it shows every one.
	SeenP99, SeenMax time.Duration
	SeenSamples      int // 0: the target's side was not measured (see the log)
	// The servers' share of one core, idle and under the load, and the
	// machine's load average at the end of each (the machine is shared).
	SrcIdleCPU, TgtIdleCPU, SrcLoadCPU, TgtLoadCPU float64
	LoadAvgIdle, LoadAvgLoaded                     string
	LoadRate                                       int // inserts per second per link
	IdleFor                                        time.Duration
	LoadedFor                                      time.Duration
}

func (r idleRun) RSSPerLink() float64     { return mb(r.RSS) / float64(r.Links) }
func (r idleRun) CPUPerLink() float64     { return 100 * r.IdleCPU / float64(r.Links) }
func (r idleRun) LoadCPUPerLink() float64 { return 100 * r.LoadCPU / float64(r.Links) }

// figIdle runs n links, each from a small database of its own on one
// source server into one of its own on one target server, all in one
// pglink serve process: its memory and CPU per link while idle, and the
// links' lag (pglink_lag_seconds) under one insert per second per link.
// It starts servers of its own, with room for n slots and WAL senders.
func figIdle(ctx context.Context, cfg config, pg pglinkCmd, res *results) (err error) {
	n := cfg.idleLinks
	settings := maps.Clone(durableSettings)
	settings["max_replication_slots"] = strconv.Itoa(n + 10)
	settings["max_wal_senders"] = strconv.Itoa(n + 10)
	settings["max_connections"] = strconv.Itoa(8*n + 100) // the links' sessions and the benchmark's own, one per link
	var servers []*server
	defer func() {
		for _, s := range servers {
			if rerr := s.remove(); rerr != nil && err == nil {
				err = rerr
			}
		}
	}()
	for range 2 {
		s, err := startServer(ctx, settings)
		if err != nil {
			return err
		}
		servers = append(servers, s)
	}
	src, tgt := servers[0].Instance, servers[1].Instance
	logf("figure 7: %d idle links in one pglink serve", n)
	file, err := idleConfig(ctx, src, tgt, n)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(file))
	port, err := instance.FreePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	start := time.Now()
	var env []string
	if cfg.profileDir != "" {
		env = []string{"PGLINK_PPROF=1"}
	}
	p, err := startProc(env, pg.bin, "serve", "--config", file, "--listen", addr)
	if err != nil {
		return err
	}
	defer stopLink(p)
	run := idleRun{Links: n, LoadRate: 1, IdleFor: cfg.idleFor, LoadedFor: cfg.idleFor}
	if err := waitReplicating(ctx, p, addr, n, 15*time.Minute); err != nil {
		return err
	}
	run.Ready = time.Since(start)
	if err := wait.Sleep(ctx, 10*time.Second); err != nil { // the first analyze and refreshes pass
		return err
	}
	profiled := profileServe(ctx, cfg, addr, "idle")
	servers0 := serversCPU(src, tgt)
	if run.IdleCPU, err = cpuShare(ctx, p.pid(), cfg.idleFor); err != nil {
		return err
	}
	run.SrcIdleCPU, run.TgtIdleCPU = serversShare(servers0, serversCPU(src, tgt), cfg.idleFor)
	run.LoadAvgIdle = loadAvg()
	<-profiled
	if run.RSS, err = residentMemory(p.pid()); err != nil {
		return err
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan error, 1)
	inserts := newInsertLog(n)
	go func() { loadDone <- idleLoad(loadCtx, src, n, inserts) }()
	lags := make(chan []time.Duration, 1)
	go func() { lags <- sampleLags(loadCtx, addr) }()
	seen := make(chan []time.Duration, 1)
	go func() { seen <- sampleSeen(loadCtx, tgt, inserts) }()
	profiled = profileServe(ctx, cfg, addr, "idle-load")
	servers0 = serversCPU(src, tgt)
	run.LoadCPU, err = cpuShare(ctx, p.pid(), cfg.idleFor)
	run.SrcLoadCPU, run.TgtLoadCPU = serversShare(servers0, serversCPU(src, tgt), cfg.idleFor)
	run.LoadAvgLoaded = loadAvg()
	<-profiled
	stopLoad()
	if lerr := <-loadDone; lerr != nil && err == nil && loadCtx.Err() == nil {
		err = lerr
	}
	samples, seenSamples := <-lags, <-seen
	if err != nil {
		return err
	}
	_, run.LagP99, run.LagMax = percentiles(samples)
	_, run.SeenP99, run.SeenMax = percentiles(seenSamples)
	run.SeenSamples = len(seenSamples)
	res.Idle = append(res.Idle, run)
	logf("figure 7: %d links ready in %s; idle: %.1f MB and %.2f%% of a core per link (servers: source %.0f%%, target %.0f%% of a core; load average %s); "+
		"under the load: lag p99 %s (max %s), seen on the target p99 %s (max %s); servers: source %.0f%%, target %.0f%%; load average %s",
		n, run.Ready.Round(time.Second), run.RSSPerLink(), run.CPUPerLink(), 100*run.SrcIdleCPU, 100*run.TgtIdleCPU, run.LoadAvgIdle,
		run.LagP99, run.LagMax, run.SeenP99, run.SeenMax, 100*run.SrcLoadCPU, 100*run.TgtLoadCPU, run.LoadAvgLoaded)
	return nil
}

// profileServe, when the benchmark was given --profile, writes a CPU
// profile of the serve process at addr over the next idle period into
// the profile folder as name.cpu.pprof (see serve's PGLINK_PPROF). The
// channel closes when it is written.
func profileServe(ctx context.Context, cfg config, addr, name string) <-chan struct{} {
	done := make(chan struct{})
	if cfg.profileDir == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		secs := max(1, int(cfg.idleFor.Seconds())-2)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			logf("figure 7: no profile: %v", err)
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			logf("figure 7: no profile: %v", err)
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, b)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(cfg.profileDir, name+".cpu.pprof"), b, 0o644)
		}
		if err != nil {
			logf("figure 7: no profile: %v", err)
		}
	}()
	return done
}

// idleConfig makes n source databases with a small table and n empty
// target databases, and writes pglink serve's file for their links.
func idleConfig(ctx context.Context, src, tgt *instance.Instance, n int) (string, error) {
	var b strings.Builder
	b.WriteString("links:\n")
	for i := range n {
		db := fmt.Sprintf("idle%03d", i)
		if err := createDB(ctx, src, db); err != nil {
			return "", err
		}
		if err := execSQL(ctx, src, db, `CREATE TABLE items (id bigserial PRIMARY KEY, v text NOT NULL, at timestamptz NOT NULL DEFAULT now())`,
			`INSERT INTO items (v) SELECT md5(g::text) FROM generate_series(1, 100) g`); err != nil {
			return "", err
		}
		if err := createDB(ctx, tgt, db); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "  - name: %s\n    source: %s\n    target: %s\n    jobs: 1\n    apply-sessions: 1\n", db, src.URL(db), tgt.URL(db))
	}
	dir, err := os.MkdirTemp("", "pglink-bench-idle-")
	if err != nil {
		return "", err
	}
	file := filepath.Join(dir, "links.yaml")
	return file, os.WriteFile(file, []byte(b.String()), 0o600)
}

// waitReplicating waits until serve's metrics show n links replicating.
func waitReplicating(ctx context.Context, p *proc, addr string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		body, err := scrapeMetrics(ctx, addr)
		if err == nil && strings.Count(body, `phase="replicating"} 1`) >= n {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("pglink serve ended before its links replicated:\n%s", tail(p.out.String(), 10))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not every one of %d links replicates after %s", n, timeout)
		}
		if err := wait.Sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

func scrapeMetrics(ctx context.Context, addr string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// cpuShare is the share of one core process pid uses over d.
func cpuShare(ctx context.Context, pid int, d time.Duration) (float64, error) {
	before, err := procCPU(pid, false)
	if err != nil {
		return 0, err
	}
	if err := wait.Sleep(ctx, d); err != nil {
		return 0, err
	}
	after, err := procCPU(pid, false)
	if err != nil {
		return 0, err
	}
	return (after - before).Seconds() / d.Seconds(), nil
}

// residentMemory is process pid's resident memory now (VmRSS), in bytes.
func residentMemory(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// insertLog keeps, per link, the inserts of the load whose rows the
// target has not been seen to show: id and when the INSERT returned.
type insertLog struct {
	mu    sync.Mutex
	links [][]insertAt
}

type insertAt struct {
	id int64
	at time.Time
}

func newInsertLog(n int) *insertLog { return &insertLog{links: make([][]insertAt, n)} }

func (l *insertLog) add(i int, id int64, at time.Time) {
	l.mu.Lock()
	l.links[i] = append(l.links[i], insertAt{id, at})
	l.mu.Unlock()
}

// seen forgets link i's inserts up to id, and returns when the oldest
// insert after it returned (zero when there is none).
func (l *insertLog) seen(i int, id int64) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	ins := l.links[i]
	k := 0
	for k < len(ins) && ins[k].id <= id {
		k++
	}
	l.links[i] = ins[k:]
	if k < len(ins) {
		return ins[k].at
	}
	return time.Time{}
}

// idleLoad inserts one row per second into each of the n source
// databases until ctx ends, logging each insert.
func idleLoad(ctx context.Context, src *instance.Instance, n int, log *insertLog) error {
	conns := make([]*pgx.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	for i := range n {
		c, err := connect(ctx, src, fmt.Sprintf("idle%03d", i))
		if err != nil {
			return err
		}
		conns[i] = c
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for i, c := range conns {
			var id int64
			if err := c.QueryRow(ctx, `INSERT INTO items (v) VALUES ('load') RETURNING id`).Scan(&id); err != nil {
				return err
			}
			log.add(i, id, time.Now())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// sampleSeen reads, each second until ctx ends, the newest row of each
// link's target database, and returns the age of the oldest insert each
// did not show yet (0 when it showed every one): the lag as a reader of
// the target sees it, measured without pglink's help.
func sampleSeen(ctx context.Context, tgt *instance.Instance, log *insertLog) []time.Duration {
	conns := make([]*pgx.Conn, len(log.links))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	for i := range conns {
		c, err := connect(ctx, tgt, fmt.Sprintf("idle%03d", i))
		if err != nil {
			logf("figure 7: no lag seen on the target: %v", err)
			return nil
		}
		conns[i] = c
	}
	var out []time.Duration
	for wait.Sleep(ctx, time.Second) == nil {
		for i, c := range conns {
			var id int64
			if err := c.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM items`).Scan(&id); err != nil {
				if ctx.Err() == nil {
					logf("figure 7: no lag seen on the target: %v", err)
				}
				return out
			}
			now := time.Now()
			if at := log.seen(i, id); !at.IsZero() {
				out = append(out, now.Sub(at))
			} else {
				out = append(out, 0)
			}
		}
	}
	return out
}

// serversCPU is the CPU time the source and target servers have used.
func serversCPU(src, tgt *instance.Instance) [2]time.Duration {
	s, _ := serverCPU(src)
	t, _ := serverCPU(tgt)
	return [2]time.Duration{s, t}
}

// serversShare is each server's share of one core between two readings d
// apart.
func serversShare(before, after [2]time.Duration, d time.Duration) (src, tgt float64) {
	return (after[0] - before[0]).Seconds() / d.Seconds(), (after[1] - before[1]).Seconds() / d.Seconds()
}

// loadAvg is the machine's load average over 1, 5 and 15 minutes.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// sampleLags reads every link's pglink_lag_seconds each second until ctx
// ends.
func sampleLags(ctx context.Context, addr string) []time.Duration {
	var out []time.Duration
	for ctx.Err() == nil {
		if body, err := scrapeMetrics(ctx, addr); err == nil {
			for _, line := range strings.Split(body, "\n") {
				if !strings.HasPrefix(line, "pglink_lag_seconds{") {
					continue
				}
				if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
					out = append(out, time.Duration(v*float64(time.Second)))
				}
			}
		}
		wait.Sleep(ctx, time.Second)
	}
	return out
}
