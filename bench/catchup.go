package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/instance"
)

// replicas is the setup of figures 2 and 3: one source database, linked
// by pglink into one target database and subscribed to natively into
// another, on the same target server. Between measurements both are
// stopped at the same marker, so a workload written meanwhile is the same
// backlog for both, ending at the same marker, the same source position.
type replicas struct {
	pg   pglinkCmd
	link link
	sub  subscription
	jobs int
	// Times of the setup: pglink's seeding and the native initial sync of
	// the same tables (informational: the native sync copies into tables
	// that already have their indexes).
	PglinkSeed, NativeSync time.Duration
}

func newReplicas(pg pglinkCmd, src, tgt *instance.Instance, srcDB string, jobs int) *replicas {
	return &replicas{
		pg:   pg,
		link: link{name: "bench_catchup", src: src, tgt: tgt, srcDB: srcDB, tgtDB: srcDB + "_pglink"},
		sub:  subscription{name: "bench_native", src: src, tgt: tgt, srcDB: srcDB, tgtDB: srcDB + "_native"},
		jobs: jobs,
	}
}

// setup seeds both targets, vacuums both copies, then leaves both stopped
// at one marker.
func (r *replicas) setup(ctx context.Context, tables []string, timeout time.Duration) error {
	start := time.Now()
	p, err := r.pg.start(r.link, r.jobs, "")
	if err != nil {
		return err
	}
	defer stopLink(p)
	if err := waitPhase(ctx, p, r.link, "replicating", timeout); err != nil {
		return err
	}
	r.PglinkSeed = time.Since(start)
	if err := stopLink(p); err != nil {
		return err
	}
	if err := waitSlotInactive(ctx, r.link.src, r.link.srcDB, r.link.slot(), time.Minute); err != nil {
		return err
	}
	start = time.Now()
	if err := r.sub.create(ctx, tables, timeout); err != nil {
		return fmt.Errorf("native subscription: %w", err)
	}
	r.NativeSync = time.Since(start)
	if err := r.sub.disable(ctx); err != nil {
		return err
	}
	// Both copies are fresh: autovacuum's first pass over each (all of
	// pgbench_accounts, for the rows the copy inserted) would otherwise
	// land in whichever measurement it happens to meet. In one report it
	// met pglink's first catch-up, 4.47 s against 2.54-2.86 s.
	if err := execSQL(ctx, r.link.tgt, r.link.tgtDB, "VACUUM (ANALYZE)"); err != nil {
		return fmt.Errorf("vacuum pglink's copy: %w", err)
	}
	if err := execSQL(ctx, r.sub.tgt, r.sub.tgtDB, "VACUUM (ANALYZE)"); err != nil {
		return fmt.Errorf("vacuum the native subscription's copy: %w", err)
	}
	_, err = r.catchUp(ctx, time.Hour, "", true)
	return err
}

// teardown drops the link, the subscription and both target databases.
func (r *replicas) teardown(ctx context.Context) error {
	err := r.pg.drop(ctx, r.link)
	if err == nil {
		err = dropDB(ctx, r.link.tgt, r.link.tgtDB)
	}
	if serr := r.sub.drop(ctx); err == nil {
		err = serr
	}
	return err
}

// catchUpTimes are the times pglink and the native subscription took to
// apply one backlog, from the start of the pglink process and from ALTER
// SUBSCRIPTION ENABLE until the target held the marker at its end, and the
// CPU each used meanwhile.
type catchUpTimes struct {
	Pglink, Native       time.Duration
	PglinkCPU, NativeCPU cpuUse
	// How far each slot's restart point was behind its confirmed position
	// when the catch-up began, in bytes: the WAL sender decodes that much
	// again before it sends anything.
	PglinkRestartLag, NativeRestartLag int64
}

// catchUp writes a marker on the source and lets pglink, then the native
// subscription (or the other way round), apply everything up to it, one at
// a time, each stopped again afterwards.
func (r *replicas) catchUp(ctx context.Context, timeout time.Duration, profile string, pglinkFirst bool) (catchUpTimes, error) {
	var t catchUpTimes
	src, err := connect(ctx, r.link.src, r.link.srcDB)
	if err != nil {
		return t, err
	}
	defer src.Close(context.Background())
	marker, err := writeMarker(ctx, src)
	if err != nil {
		return t, err
	}
	steps := []func() error{
		func() (err error) {
			if t.PglinkRestartLag, err = restartLag(ctx, src, r.link.slot()); err != nil {
				return err
			}
			t.Pglink, t.PglinkCPU, err = r.pglinkCatchUp(ctx, marker, timeout, profile)
			return err
		},
		func() (err error) {
			if t.NativeRestartLag, err = restartLag(ctx, src, r.sub.slot()); err != nil {
				return err
			}
			t.Native, t.NativeCPU, err = r.nativeCatchUp(ctx, marker, timeout)
			return err
		},
	}
	if !pglinkFirst {
		steps[0], steps[1] = steps[1], steps[0]
	}
	for _, step := range steps {
		if err := checkpoint(ctx, r.link.src, r.link.tgt); err != nil {
			return t, err
		}
		if err := step(); err != nil {
			return t, err
		}
	}
	return t, nil
}

func (r *replicas) pglinkCatchUp(ctx context.Context, marker int64, timeout time.Duration, profile string) (time.Duration, cpuUse, error) {
	tgt, err := connect(ctx, r.link.tgt, r.link.tgtDB)
	if err != nil {
		return 0, cpuUse{}, err
	}
	defer tgt.Close(context.Background())
	cpu := startCPU(r.link.src, r.link.tgt)
	start := time.Now()
	p, err := r.pg.start(r.link, r.jobs, profile)
	if err != nil {
		return 0, cpuUse{}, err
	}
	defer stopLink(p)
	cpu.client(p.pid())
	if err := waitMarker(ctx, tgt, marker, p, timeout); err != nil {
		return 0, cpuUse{}, fmt.Errorf("pglink: %w", err)
	}
	d := time.Since(start)
	use := cpu.stop()
	if err := stopLink(p); err != nil {
		return 0, use, err
	}
	return d, use, waitSlotInactive(ctx, r.link.src, r.link.srcDB, r.link.slot(), time.Minute)
}

func (r *replicas) nativeCatchUp(ctx context.Context, marker int64, timeout time.Duration) (time.Duration, cpuUse, error) {
	tgt, err := connect(ctx, r.sub.tgt, r.sub.tgtDB)
	if err != nil {
		return 0, cpuUse{}, err
	}
	defer tgt.Close(context.Background())
	cpu := startCPU(r.sub.src, r.sub.tgt)
	start := time.Now()
	if err := r.sub.enable(ctx); err != nil {
		return 0, cpuUse{}, err
	}
	err = waitMarker(ctx, tgt, marker, nil, timeout)
	d := time.Since(start)
	use := cpu.stop()
	if derr := r.sub.disable(ctx); err == nil {
		err = derr
	}
	if err != nil {
		return 0, use, fmt.Errorf("native subscription: %w", err)
	}
	return d, use, nil
}

// restartLag reads how far slot's restart point is behind its confirmed
// position, in bytes.
func restartLag(ctx context.Context, src *pgx.Conn, slot string) (int64, error) {
	var lag int64
	err := src.QueryRow(ctx, `SELECT (confirmed_flush_lsn - restart_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&lag)
	if err != nil {
		return 0, fmt.Errorf("source: slot %s: %w", slot, err)
	}
	return lag, nil
}

// backlogRun is one measurement of figure 2.
type backlogRun struct {
	Txns    int64 // source transactions in the backlog (the workload's, plus the marker)
	Written pgbenchResult
	catchUpTimes
}

func (b backlogRun) PglinkTPS() float64 { return float64(b.Txns) / b.Pglink.Seconds() }
func (b backlogRun) NativeTPS() float64 { return float64(b.Txns) / b.Native.Seconds() }

// backlog writes workload w while both are stopped, then times how long
// each takes to apply it.
func (r *replicas) backlog(ctx context.Context, w workload, pglinkFirst bool, profile string) (backlogRun, error) {
	var b backlogRun
	var err error
	if b.Written, err = runPgbench(ctx, r.link.src, r.link.srcDB, w); err != nil {
		return b, err
	}
	b.Txns = b.Written.Txns + 1
	b.catchUpTimes, err = r.catchUp(ctx, time.Hour, profile, pglinkFirst)
	return b, err
}

// rowCount is a helper for checks: the rows of a table in db.
func rowCount(ctx context.Context, inst *instance.Instance, db, table string) (int64, error) {
	conn, err := connect(ctx, inst, db)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n)
	return n, err
}
