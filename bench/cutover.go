package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/pglink/pglink/internal/demo"
	"github.com/pglink/pglink/internal/instance"
	"github.com/pglink/pglink/internal/wait"
)

// errNoFailover says figure 4 cannot be measured by this pglink.
var errNoFailover = errors.New("not measured: pglink failover not available")

// cutover is the setup of figure 4: a small pgbench database of its own,
// linked, and failed over while pgbench writes to it.
type cutover struct {
	pg   pglinkCmd
	link link
}

func newCutover(pg pglinkCmd, src, tgt *instance.Instance, i int) *cutover {
	db := fmt.Sprintf("bench_cutover_%d", i)
	return &cutover{pg: pg, link: link{name: db, src: src, tgt: tgt, srcDB: db, tgtDB: db}}
}

// cutoverRun is one planned failover under load.
type cutoverRun struct {
	Downtime time.Duration // as pglink failover reports it (downtime_seconds)
	Total    time.Duration // the whole pglink failover command
	Load     pgbenchResult
}

// failoverReport is the part of pglink failover --json the benchmark reads.
type failoverReport struct {
	DowntimeSeconds *float64 `json:"downtime_seconds"`
}

// parseFailover reads downtime_seconds from pglink failover --json output;
// the JSON object may follow other lines.
func parseFailover(out string) (time.Duration, error) {
	i := strings.Index(out, "{")
	if i < 0 {
		return 0, fmt.Errorf("pglink failover printed no JSON:\n%s", tail(out, 10))
	}
	var rep failoverReport
	if err := json.NewDecoder(strings.NewReader(out[i:])).Decode(&rep); err != nil {
		return 0, fmt.Errorf("pglink failover JSON: %w", err)
	}
	if rep.DowntimeSeconds == nil {
		return 0, errors.New("pglink failover JSON has no downtime_seconds")
	}
	return time.Duration(*rep.DowntimeSeconds * float64(time.Second)), nil
}

// writer is the write load of a cutover run: pgbench, or the demo's shop
// workload.
type writer interface {
	// fence says the failover begins: refusals are expected from now on.
	fence()
	// stop ends the load and says what it did.
	stop(ctx context.Context) pgbenchResult
}

type pgbenchWriter struct{ p *proc }

func (w pgbenchWriter) fence() {}

// stop interrupts pgbench, which fails once the source stops taking
// writes; its count says how far it got, not whether the failover worked.
func (w pgbenchWriter) stop(ctx context.Context) pgbenchResult {
	w.p.signal(syscall.SIGINT)
	w.p.wait(ctx)
	r, _ := parsePgbench(w.p.out.String())
	return r
}

type shopWriter struct {
	w      *demo.Workload
	cancel context.CancelFunc
	done   chan error
}

func (w *shopWriter) fence() { w.w.ExpectFence() }

func (w *shopWriter) stop(ctx context.Context) pgbenchResult {
	w.cancel()
	<-w.done
	return pgbenchResult{Txns: w.w.Committed()}
}

// startLoad fills the database for the load and starts it: pgbench at
// w's rate, or, with shop, the demo's shop (its default size) and its
// workload, w.Clients sessions writing as fast as they can.
func (c *cutover) startLoad(ctx context.Context, w workload, shop bool) (writer, error) {
	l := c.link
	if !shop {
		p, err := startPgbench(l.src, l.srcDB, w)
		if err != nil {
			return nil, err
		}
		return pgbenchWriter{p}, nil
	}
	wl := demo.NewWorkload(l.source(), w.Clients)
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sw := &shopWriter{w: wl, cancel: cancel, done: make(chan error, 1)}
	go func() { sw.done <- wl.Run(lctx) }()
	return sw, nil
}

// fill makes the run's source data: pgbench's at scale 1, or the demo's
// shop.
func (c *cutover) fill(ctx context.Context, shop bool) error {
	l := c.link
	if !shop {
		return pgbenchInit(ctx, l.src, l.srcDB, 1)
	}
	conn, err := connect(ctx, l.src, l.srcDB)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return demo.CreateShop(ctx, conn, demo.DefaultScale)
}

// run makes the database, links it, starts the load and, a few seconds
// in, runs a planned failover; then removes everything.
func (c *cutover) run(ctx context.Context, w workload, shop bool) (cutoverRun, error) {
	var r cutoverRun
	if !c.pg.hasCommand(ctx, "failover") {
		return r, errNoFailover
	}
	l := c.link
	defer func() {
		ctx := context.WithoutCancel(ctx)
		c.pg.drop(ctx, l)
		dropDB(ctx, l.tgt, l.tgtDB)
		execSQL(ctx, l.src, "postgres", fmt.Sprintf(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
			WHERE database = '%s' AND NOT active`, l.srcDB))
		dropDB(ctx, l.src, l.srcDB)
	}()
	if err := createDB(ctx, l.src, l.srcDB); err != nil {
		return r, err
	}
	if err := c.fill(ctx, shop); err != nil {
		return r, err
	}
	p, err := c.pg.start(l, 2, "")
	if err != nil {
		return r, err
	}
	defer stopLink(p)
	if err := waitPhase(ctx, p, l, "replicating", 10*time.Minute); err != nil {
		return r, err
	}
	loadStart := time.Now()
	load, err := c.startLoad(ctx, w, shop)
	if err != nil {
		return r, err
	}
	stopped := false
	defer func() {
		if !stopped {
			load.stop(context.WithoutCancel(ctx))
		}
	}()
	// The demo fails over after 15 s of its load; pgbench's steady rate
	// is steady after 5.
	before := 5 * time.Second
	if shop {
		before = 15 * time.Second
	}
	if err := wait.Sleep(ctx, before); err != nil {
		return r, err
	}
	load.fence()
	start := time.Now()
	out, err := run(ctx, nil, c.pg.bin, "failover", "--name", l.name, "--source", l.source(), "--target", l.target(),
		"--planned", "--yes", "--json")
	r.Total = time.Since(start)
	if err != nil {
		return r, fmt.Errorf("pglink failover: %w\n%s", err, tail(out, 20))
	}
	if r.Downtime, err = parseFailover(out); err != nil {
		return r, err
	}
	r.Load = load.stop(ctx)
	stopped = true
	r.Load.Elapsed = time.Since(loadStart)
	return r, nil
}
