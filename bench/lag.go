package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/instance"
	"github.com/pglink/pglink/internal/wait"
)

// lsnAt is the source's WAL position at one moment.
type lsnAt struct {
	t   time.Time
	lsn pglogrepl.LSN
}

// lagSample is one reading of how far a replica is: the slot's
// confirmed_flush_lsn (the source's view) and the target's origin position
// (the last source commit the target has applied).
type lagSample struct {
	t                  time.Time
	confirmed, applied pglogrepl.LSN
}

// lagSampler reads the source's WAL position every 10 ms, which gives the
// moment the source reached any position, and the replica's positions
// every 100 ms. A position's lag is the time since the source reached it.
type lagSampler struct {
	src, tgt     *instance.Instance
	srcDB, tgtDB string
	slot, origin string

	mu      sync.Mutex
	history []lsnAt
	samples []lagSample
}

func (s *lagSampler) run(ctx context.Context) error {
	srcHist, err := connect(ctx, s.src, s.srcDB)
	if err != nil {
		return err
	}
	defer srcHist.Close(context.Background())
	srcSlot, err := connect(ctx, s.src, s.srcDB)
	if err != nil {
		return err
	}
	defer srcSlot.Close(context.Background())
	tgt, err := connect(ctx, s.tgt, s.tgtDB)
	if err != nil {
		return err
	}
	defer tgt.Close(context.Background())
	errs := make(chan error, 2)
	go func() { errs <- s.readHistory(ctx, srcHist) }()
	go func() { errs <- s.readPositions(ctx, srcSlot, tgt) }()
	err = <-errs
	if err2 := <-errs; err == nil {
		err = err2
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func scanLSN(row pgx.Row) (pglogrepl.LSN, error) {
	var text *string
	if err := row.Scan(&text); err != nil {
		return 0, err
	}
	if text == nil {
		return 0, nil
	}
	return pglogrepl.ParseLSN(*text)
}

func (s *lagSampler) readHistory(ctx context.Context, conn *pgx.Conn) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		before := time.Now()
		lsn, err := scanLSN(conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`))
		if err != nil {
			return err
		}
		at := before.Add(time.Since(before) / 2)
		s.mu.Lock()
		s.history = append(s.history, lsnAt{at, lsn})
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (s *lagSampler) readPositions(ctx context.Context, src, tgt *pgx.Conn) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		before := time.Now()
		confirmed, err := scanLSN(src.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, s.slot))
		if err != nil {
			return fmt.Errorf("read slot %s: %w", s.slot, err)
		}
		applied, err := scanLSN(tgt.QueryRow(ctx, `SELECT max(remote_lsn)::text FROM pg_replication_origin_status WHERE external_id IN ($1, $1 || '.2')`, s.origin)) // pglink's second session has an origin of its own
		if err != nil {
			return fmt.Errorf("read origin %s: %w", s.origin, err)
		}
		at := before.Add(time.Since(before) / 2)
		s.mu.Lock()
		s.samples = append(s.samples, lagSample{at, confirmed, applied})
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// lagOf returns how far behind position pos is at time t: the time since
// the source's WAL first reached pos, interpolated between the history's
// readings; 0 when the source had not passed pos by the last reading.
func lagOf(hist []lsnAt, pos pglogrepl.LSN, t time.Time) time.Duration {
	i := sort.Search(len(hist), func(i int) bool { return hist[i].lsn >= pos })
	if i == len(hist) {
		return 0
	}
	reached := hist[i].t
	if i > 0 && hist[i].lsn > hist[i-1].lsn {
		prev := hist[i-1]
		frac := float64(pos-prev.lsn) / float64(hist[i].lsn-prev.lsn)
		reached = prev.t.Add(time.Duration(frac * float64(hist[i].t.Sub(prev.t))))
	}
	return max(0, t.Sub(reached))
}

// lagStats are percentiles of lag over a run.
type lagStats struct {
	Samples                            int
	P50, P99, Max                      time.Duration // the source's view: confirmed_flush_lsn
	AppliedP50, AppliedP99, AppliedMax time.Duration // the target's: its origin's position
}

// stats computes the lag of every sample taken between from and to, from
// the source's view (confirmed_flush_lsn) and from the target's (the
// position the target has applied).
func (s *lagSampler) stats(from, to time.Time) lagStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var confirmed, applied []time.Duration
	for _, smp := range s.samples {
		if smp.t.Before(from) || smp.t.After(to) {
			continue
		}
		confirmed = append(confirmed, lagOf(s.history, smp.confirmed, smp.t))
		applied = append(applied, lagOf(s.history, smp.applied, smp.t))
	}
	st := lagStats{Samples: len(confirmed)}
	st.P50, st.P99, st.Max = percentiles(confirmed)
	st.AppliedP50, st.AppliedP99, st.AppliedMax = percentiles(applied)
	return st
}

// percentiles returns the nearest-rank p50 and p99 and the maximum.
func percentiles(d []time.Duration) (p50, p99, maxd time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(d))+0.999999) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return rank(0.50), rank(0.99), d[len(d)-1]
}

// measureLag runs the workload while the sampler watches a replica that
// the caller keeps running, and returns the lag while it ran.
func measureLag(ctx context.Context, s *lagSampler, w workload, db string) (lagStats, pgbenchResult, error) {
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.run(sctx) }()
	if err := wait.Sleep(ctx, time.Second); err != nil { // a steady sampler before the load starts
		stop()
		<-done
		return lagStats{}, pgbenchResult{}, err
	}
	from := time.Now()
	res, err := runPgbench(ctx, s.src, db, w)
	to := time.Now()
	stop()
	if serr := <-done; err == nil {
		err = serr
	}
	if err != nil {
		return lagStats{}, res, err
	}
	return s.stats(from, to), res, nil
}

// liveLag is one measurement of figure 3 for pglink and the native
// subscription, each alone under the same steady workload.
type liveLag struct {
	Pglink, Native         lagStats
	PglinkLoad, NativeLoad pgbenchResult
	PglinkCPU, NativeCPU   cpuUse
}

func (r *replicas) liveLag(ctx context.Context, w workload, pglinkFirst bool, profile string) (liveLag, error) {
	var l liveLag
	steps := []func() error{
		func() error { return r.pglinkLag(ctx, w, profile, &l) },
		func() error { return r.nativeLag(ctx, w, &l) },
	}
	if !pglinkFirst {
		steps[0], steps[1] = steps[1], steps[0]
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return l, err
		}
	}
	return l, nil
}

func (r *replicas) pglinkLag(ctx context.Context, w workload, profile string, l *liveLag) error {
	if err := checkpoint(ctx, r.link.src, r.link.tgt); err != nil {
		return err
	}
	p, err := r.pg.start(r.link, r.jobs, profile)
	if err != nil {
		return err
	}
	defer stopLink(p)
	if err := r.waitCaughtUp(ctx, r.link.tgtDB, p); err != nil {
		return err
	}
	s := &lagSampler{src: r.link.src, tgt: r.link.tgt, srcDB: r.link.srcDB, tgtDB: r.link.tgtDB,
		slot: r.link.slot(), origin: r.link.origin()}
	cpu := startCPU(r.link.src, r.link.tgt)
	cpu.client(p.pid())
	l.Pglink, l.PglinkLoad, err = measureLag(ctx, s, w, r.link.srcDB)
	l.PglinkCPU = cpu.stop()
	if err != nil {
		return fmt.Errorf("pglink live lag: %w", err)
	}
	if p.exited() {
		return fmt.Errorf("pglink exited during the live lag measurement: %v\n%s", p.err, tail(p.out.String(), 20))
	}
	if err := r.waitCaughtUp(ctx, r.link.tgtDB, p); err != nil {
		return err
	}
	if err := stopLink(p); err != nil {
		return err
	}
	return waitSlotInactive(ctx, r.link.src, r.link.srcDB, r.link.slot(), time.Minute)
}

func (r *replicas) nativeLag(ctx context.Context, w workload, l *liveLag) (err error) {
	if err := checkpoint(ctx, r.sub.src, r.sub.tgt); err != nil {
		return err
	}
	if err := r.sub.enable(ctx); err != nil {
		return err
	}
	defer func() {
		if derr := r.sub.disable(ctx); err == nil {
			err = derr
		}
	}()
	if err := r.waitCaughtUp(ctx, r.sub.tgtDB, nil); err != nil {
		return err
	}
	origin, err := r.sub.originName(ctx)
	if err != nil {
		return err
	}
	s := &lagSampler{src: r.sub.src, tgt: r.sub.tgt, srcDB: r.sub.srcDB, tgtDB: r.sub.tgtDB,
		slot: r.sub.slot(), origin: origin}
	cpu := startCPU(r.sub.src, r.sub.tgt)
	l.Native, l.NativeLoad, err = measureLag(ctx, s, w, r.sub.srcDB)
	l.NativeCPU = cpu.stop()
	if err != nil {
		return fmt.Errorf("native live lag: %w", err)
	}
	return r.waitCaughtUp(ctx, r.sub.tgtDB, nil)
}

// waitCaughtUp writes a marker and waits until the target database holds it.
func (r *replicas) waitCaughtUp(ctx context.Context, tgtDB string, p *proc) error {
	src, err := connect(ctx, r.link.src, r.link.srcDB)
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	tgt, err := connect(ctx, r.link.tgt, tgtDB)
	if err != nil {
		return err
	}
	defer tgt.Close(context.Background())
	m, err := writeMarker(ctx, src)
	if err != nil {
		return err
	}
	return waitMarker(ctx, tgt, m, p, 30*time.Minute)
}
