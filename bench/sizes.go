package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/instance"
)

// seedSize is figure 1 at one pgbench scale.
type seedSize struct {
	Scale  int
	DBSize string
	Runs   []seedRun
}

// backlogSize is figure 2 for one length of backlog.
type backlogSize struct {
	For  time.Duration
	Runs []backlogRun
}

// parseScales reads a comma-separated list of pgbench scales.
func parseScales(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--seed-scales: %q is no positive pgbench scale", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseDurations reads a comma-separated list of durations.
func parseDurations(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("--backlogs: %q is no positive duration (like 30s)", f)
		}
		out = append(out, d)
	}
	return out, nil
}

// figSeeding measures figure 1 (and 6) at every scale of --seed-scales.
// The main scale's database is the one the other figures use; every other
// scale gets a database of its own, made before and dropped after.
func figSeeding(ctx context.Context, cfg config, pg pglinkCmd, src, tgt *instance.Instance, db string, res *results) error {
	note := ""
	copydb := ""
	if p, err := exec.LookPath("pgcopydb"); err == nil {
		copydb = p
	} else {
		note = "pgcopydb is not installed (make bench installs it with apt-get install pgcopydb)"
	}
	res.SeedNote = note
	for _, scale := range cfg.seedScales {
		size := seedSize{Scale: scale}
		if err := seedAtScale(ctx, cfg, pg, src, tgt, db, copydb, &size); err != nil {
			return fmt.Errorf("scale %d: %w", scale, err)
		}
		res.Seeding = append(res.Seeding, size)
	}
	return nil
}

func seedAtScale(ctx context.Context, cfg config, pg pglinkCmd, src, tgt *instance.Instance, db, copydb string, size *seedSize) (err error) {
	if size.Scale != cfg.scale {
		db = fmt.Sprintf("%s_s%d", db, size.Scale)
		logf("figure 1 at scale %d: pgbench -i", size.Scale)
		if err := createDB(ctx, src, db); err != nil {
			return err
		}
		defer func() {
			if derr := dropDB(context.WithoutCancel(ctx), src, db); derr != nil && err == nil {
				err = derr
			}
		}()
		if err := pgbenchInit(ctx, src, db, size.Scale); err != nil {
			return err
		}
	}
	if size.DBSize, err = dbSize(ctx, src, db); err != nil {
		return err
	}
	if size.Scale > cfg.scale {
		// The target's WAL was warmed for the main scale (see warmWAL):
		// a bigger one would make whichever tool copies first create
		// and zero-fill its new WAL segments.
		if err := warmWAL(ctx, tgt, int64(size.Scale)*32<<20); err != nil {
			return err
		}
	}
	s := &seeding{pg: pg, src: src, tgt: tgt, srcDB: db, jobs: cfg.jobs, pgcopydb: copydb}
	for i := range cfg.runs {
		logf("figures 1 and 6 at scale %d (%s), run %d of %d: pglink, pgcopydb (defaults, split), pg_dump/pg_restore, pglink validate",
			size.Scale, size.DBSize, i+1, cfg.runs)
		r, err := s.run(ctx, i, profileName(cfg, fmt.Sprintf("seed-s%d", size.Scale), i))
		if err != nil {
			return err
		}
		copied := "not installed"
		if !r.PgcopydbSkipped {
			copied = fmt.Sprintf("%.1fs (split %.1fs)", secs(r.Pgcopydb), secs(r.PgcopydbSplit))
		}
		logf("  pglink %.1fs (validate %.1fs), pgcopydb %s, pg_dump+pg_restore %.1fs", secs(r.Pglink), secs(r.Validate), copied, secs(r.DumpRestore()))
		size.Runs = append(size.Runs, r)
	}
	return nil
}

// catchUpSizes measures figure 2 for every backlog of --backlogs.
func catchUpSizes(ctx context.Context, cfg config, r *replicas, res *results) error {
	for _, d := range cfg.backlogs {
		size := backlogSize{For: d}
		w := workload{Clients: 4, Duration: d}
		for i := range cfg.runs {
			logf("figure 2, run %d of %d: a %s pgbench backlog", i+1, cfg.runs, d)
			b, err := r.backlog(ctx, w, i%2 == 0, profileName(cfg, fmt.Sprintf("catchup-%s", d), i))
			if err != nil {
				return err
			}
			logf("  %d txns: pglink %.2fs (%.0f txn/s), native %.2fs (%.0f txn/s)", b.Txns, secs(b.Pglink), b.PglinkTPS(), secs(b.Native), b.NativeTPS())
			size.Runs = append(size.Runs, b)
		}
		res.Catchup = append(res.Catchup, size)
	}
	return nil
}
