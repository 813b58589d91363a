package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

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

// run makes the database, links it, starts pgbench at a steady rate and,
// a few seconds in, runs a planned failover; then removes everything.
func (c *cutover) run(ctx context.Context, w workload) (cutoverRun, error) {
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
	if err := pgbenchInit(ctx, l.src, l.srcDB, 1); err != nil {
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
	load, err := startPgbench(l.src, l.srcDB, w)
	if err != nil {
		return r, err
	}
	defer load.kill()
	if err := wait.Sleep(ctx, 5*time.Second); err != nil {
		return r, err
	}
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
	// pgbench fails once the source stops taking writes; its count says
	// how far it got, not whether the failover worked.
	load.signal(syscall.SIGINT)
	load.wait(ctx)
	r.Load, _ = parsePgbench(load.out.String())
	r.Load.Elapsed = time.Since(loadStart)
	return r, nil
}
