package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/pglink/pglink/internal/instance"
)

// pgbenchTables are the tables pgbench -i makes. pgbench_history has no
// key; it only takes INSERTs, and REPLICA IDENTITY FULL lets every tool
// (pglink refuses a table without an identity) replicate it.
var pgbenchTables = []string{"pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"}

// markerDDL is the table whose rows mark a point in the source's stream:
// a target has applied everything before a marker once it holds the row.
const markerDDL = `CREATE TABLE bench_marker (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`

// pgbenchPath is the pgbench next to the server binaries.
func pgbenchPath() (string, error) {
	dir, err := instance.BinDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "pgbench"), nil
}

// pgbenchInit fills db with pgbench's tables at scale (rows generated on
// the server), gives pgbench_history an identity, adds the marker table,
// and leaves the tables vacuumed, analyzed and checkpointed.
func pgbenchInit(ctx context.Context, inst *instance.Instance, db string, scale int) error {
	bin, err := pgbenchPath()
	if err != nil {
		return err
	}
	args := append(hostArgs(inst), "-i", "-q", "-I", "dtGvp", "-s", strconv.Itoa(scale), db)
	if out, err := run(ctx, nil, bin, args...); err != nil {
		return fmt.Errorf("pgbench -i: %w\n%s", err, tail(out, 10))
	}
	return execSQL(ctx, inst, db,
		`ALTER TABLE pgbench_history REPLICA IDENTITY FULL`,
		markerDDL,
		`VACUUM ANALYZE`,
		`CHECKPOINT`)
}

// workload is a pgbench run of the built-in TPC-B-like script.
type workload struct {
	Clients  int
	Duration time.Duration // -T; used when Txns is 0
	Txns     int           // -t: transactions per client
	Rate     int           // -R: target transactions per second in all; 0 for as fast as it goes
}

// pgbenchResult is what pgbench reports.
type pgbenchResult struct {
	Txns    int64   // transactions processed
	Failed  int64   // failed transactions
	TPS     float64 // without initial connection time
	Elapsed time.Duration
}

var (
	processedRE = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	failedRE    = regexp.MustCompile(`number of failed transactions: (\d+)`)
	tpsRE       = regexp.MustCompile(`tps = ([0-9.]+)`)
)

func parsePgbench(out string) (pgbenchResult, error) {
	var r pgbenchResult
	m := processedRE.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("pgbench output without a transaction count:\n%s", tail(out, 10))
	}
	r.Txns, _ = strconv.ParseInt(m[1], 10, 64)
	if m := failedRE.FindStringSubmatch(out); m != nil {
		r.Failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := tpsRE.FindStringSubmatch(out); m != nil {
		r.TPS, _ = strconv.ParseFloat(m[1], 64)
	}
	return r, nil
}

func (w workload) args(inst *instance.Instance, db string) []string {
	jobs := min(w.Clients, 2)
	args := append(hostArgs(inst), "-n", "-M", "prepared", "-c", strconv.Itoa(w.Clients), "-j", strconv.Itoa(max(jobs, 1)))
	if w.Txns > 0 {
		args = append(args, "-t", strconv.Itoa(w.Txns))
	} else {
		args = append(args, "-T", strconv.Itoa(int(w.Duration.Seconds())))
	}
	if w.Rate > 0 {
		args = append(args, "-R", strconv.Itoa(w.Rate))
	}
	return append(args, db)
}

// startPgbench starts the workload on db; finish it with pgbenchWait.
func startPgbench(inst *instance.Instance, db string, w workload) (*proc, error) {
	bin, err := pgbenchPath()
	if err != nil {
		return nil, err
	}
	return startProc(nil, bin, w.args(inst, db)...)
}

func pgbenchWait(ctx context.Context, p *proc, start time.Time) (pgbenchResult, error) {
	if err := p.wait(ctx); err != nil {
		return pgbenchResult{}, err
	}
	r, err := parsePgbench(p.out.String())
	r.Elapsed = time.Since(start)
	if err == nil && r.Failed > 0 {
		err = fmt.Errorf("pgbench: %d transactions failed\n%s", r.Failed, tail(p.out.String(), 10))
	}
	return r, err
}

// runPgbench runs the workload on db to its end.
func runPgbench(ctx context.Context, inst *instance.Instance, db string, w workload) (pgbenchResult, error) {
	start := time.Now()
	p, err := startPgbench(inst, db, w)
	if err != nil {
		return pgbenchResult{}, err
	}
	return pgbenchWait(ctx, p, start)
}
