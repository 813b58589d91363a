package link

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/pglink/pglink/internal/apply"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/quote"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/stream"
	"github.com/pglink/pglink/internal/wait"
)

// HeartbeatInterval is how often the link writes a heartbeat into the
// source's WAL: it keeps the slot moving when the source is idle and gives
// the lag in seconds a clock to go by.
var HeartbeatInterval = time.Second

// statusInterval is the stream's standby status timer. Between its ticks
// the stream reports each durable commit of the apply within
// stream.DefaultStatusGap; tests lengthen it to prove that.
var statusInterval = stream.DefaultStatusInterval

// heartbeatPrefix marks pglink's logical decoding messages.
const heartbeatPrefix = "pglink"

// queueSize bounds the changes between stream and apply.
const queueSize = 4096

// replicate streams and applies until ctx ends, reconnecting with backoff
// when a connection is lost. An error the servers answer with (not a lost
// connection) marks the link broken, with the error and its remedy, and is
// retried more slowly: the user may fix the cause while pglink waits.
func (r *runner) replicate(ctx context.Context) error {
	if removed, err := removeStaleSpoolDirs(os.TempDir(), r.cfg.Name); err != nil {
		r.log.Warn("could not remove the spool folders of earlier processes", "error", err)
	} else if len(removed) > 0 {
		r.log.Info("removed the spool folders of earlier processes", "folders", removed)
	}
	delay := time.Duration(0)
	for {
		r.healthy.Store(false)
		err := r.streamOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, state.ErrFailedOver) || errors.Is(err, state.ErrLinkGone) {
			r.log.Info("the link has ended; this process stops", "reason", err)
			r.noteEnded(err)
			return nil
		}
		if errors.Is(err, state.ErrLeaseTaken) {
			return err
		}
		if lost := r.slotLost(ctx); lost != nil {
			r.markBroken(ctx, lost)
			return lost
		}
		if r.binaryFallback(err) {
			r.cfg.Live.NoteError(err, true)
			r.reconnectControlOrLog(ctx)
			continue // at once, in text: nothing is wrong with the link
		}
		if r.healthy.Load() {
			delay = 0 // a session that worked: this failure is a new one
		}
		delay = nextBackoff(delay)
		r.log.Warn("replication interrupted; retrying", "side", sideOf(err), "error", err, "in", delay)
		// The target's control session first: the failure may have taken
		// it too, and the error is recorded through it. The source's waits
		// for the next attempt, so that a source that cannot be reached
		// does not hold back the record.
		if !r.alive(ctx, r.tgtConn, endpoint.Target) {
			r.reconnectControlOrLog(ctx)
		}
		if !endpoint.IsConnectionLost(err) && !errors.Is(err, state.ErrLeaseLost) {
			r.markBroken(ctx, err)
		} else {
			r.recordError(ctx, err)
		}
		r.cfg.Live.NoteError(err, true)
		if sideOf(err) == endpoint.Source {
			r.forgetSourcePosition(ctx)
		}
		if err := r.sleepUnlessEnded(ctx, delay); err != nil {
			if errors.Is(err, state.ErrFailedOver) || errors.Is(err, state.ErrLinkGone) {
				r.log.Info("the link has ended; this process stops", "reason", err)
				r.noteEnded(err)
			}
			return nil
		}
		r.reconnectControlOrLog(ctx)
	}
}

// reconnectControlOrLog replaces the control sessions that were lost, and
// logs which side cannot be reached: the next attempt says it again.
func (r *runner) reconnectControlOrLog(ctx context.Context) {
	if err := r.reconnectControl(ctx); err != nil {
		r.log.Warn(string(sideOf(err))+" not reachable", "error", err)
	}
}

// forgetSourcePosition clears the lag in seconds that the session
// reported, once its source went away: the lag is unknown now, and pglink
// status must not show the last one (or a lag in bytes from the source's
// last WAL end) while the link stands still. The WAL end stays: a forced
// failover reports it as the last known source position.
func (r *runner) forgetSourcePosition(ctx context.Context) {
	if r.tgtConn == nil || r.tgtConn.IsClosed() {
		return
	}
	err := state.ControlQuery(ctx, endpoint.Target, "the record of the lost source", func(ctx context.Context) error {
		_, err := r.tgtConn.Exec(ctx, `UPDATE pglink.links SET lag_seconds = NULL WHERE name = $1`, r.cfg.Name)
		return err
	})
	if err != nil {
		r.log.Warn("could not record that the source is lost", "error", err)
	}
}

// sideOf names the side an error comes from, or "" when it names none.
func sideOf(err error) endpoint.Side {
	var ee *endpoint.Error
	var se *endpoint.SilentError
	switch {
	case errors.As(err, &se):
		return se.Side
	case errors.As(err, &ee):
		return ee.Side
	case err == nil:
		return ""
	}
	for _, side := range []endpoint.Side{endpoint.Source, endpoint.Target} {
		if strings.HasPrefix(err.Error(), string(side)+":") || strings.HasPrefix(err.Error(), string(side)+" ") {
			return side
		}
	}
	return ""
}

func (r *runner) markBroken(ctx context.Context, err error) {
	if r.tgtConn == nil || r.tgtConn.IsClosed() {
		return
	}
	perr := state.ControlQuery(ctx, endpoint.Target, "the record of the broken phase", func(ctx context.Context) error {
		return state.SetPhase(ctx, r.tgtConn, r.cfg.Name, state.PhaseBroken)
	})
	r.cfg.Live.SetState(string(state.PhaseBroken))
	if perr != nil {
		r.log.Warn("could not record the broken phase", "error", perr)
	}
	r.recordError(ctx, err)
}

// reconnectControl replaces the control sessions when they were lost (or
// answer no ping within ControlTimeout).
func (r *runner) reconnectControl(ctx context.Context) error {
	if !r.alive(ctx, r.tgtConn, endpoint.Target) {
		conn, err := r.tgt.Connect(ctx)
		if err != nil {
			return err
		}
		r.tgtConn = conn
	}
	if !r.alive(ctx, r.srcConn, endpoint.Source) {
		conn, err := r.src.Connect(ctx)
		if err != nil {
			return err
		}
		r.srcConn = conn
	}
	return nil
}

// pingTimeout bounds the ping that tells whether a control session is
// still alive.
const pingTimeout = 2 * time.Second

// alive tells whether conn answers a ping in time; one that does not is
// closed (without waiting for a server that may never answer).
func (r *runner) alive(ctx context.Context, conn *pgx.Conn, side endpoint.Side) bool {
	if conn == nil || conn.IsClosed() {
		return false
	}
	// A short wait: a session that is slow to answer is only replaced.
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if conn.Ping(pctx) == nil {
		return true
	}
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	conn.Close(closeCtx)
	return false
}

// syncPositions returns the per-table positions the seeding copied at.
func (r *runner) syncPositions(ctx context.Context) (map[string]change.LSN, error) {
	rows, err := state.LoadTables(ctx, r.tgtConn, r.cfg.Name)
	if err != nil {
		return nil, err
	}
	out := make(map[string]change.LSN, len(rows))
	for _, t := range rows {
		out[t.Key()] = t.SyncLSN
	}
	return out, nil
}

// streamOnce runs one replication session, while this process holds the
// link's lease: it is taken (again) before any apply session binds the
// link's origin, and losing it stops the session at once.
func (r *runner) streamOnce(ctx context.Context) error {
	bctx, unbind, err := r.lease.Bind(ctx)
	if err != nil {
		return err
	}
	defer unbind()
	return r.lease.LostFrom(bctx, r.streamSession(bctx))
}

// streamSession runs stream, apply, heartbeats and the status reporter,
// until one of them fails or ctx ends.
func (r *runner) streamSession(ctx context.Context) error {
	if err := r.ended(ctx); err != nil {
		return err
	}
	syncAt, err := r.syncPositions(ctx)
	if err != nil {
		return err
	}
	if err := r.endStaleSessions(ctx); err != nil {
		return err
	}
	applyConn, err := r.tgt.Connect(ctx)
	if err != nil {
		return err
	}
	defer applyConn.Close(context.WithoutCancel(ctx))
	r.noteSession(ctx, applyConn)
	if err := apply.PrepareSession(ctx, applyConn); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	origins := []string{r.names.Origin, r.names.Origin2}
	if r.cfg.ApplySessions == 1 {
		origins = origins[:1]
	}
	if err := apply.EnsureOrigin(ctx, applyConn, origins...); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if r.cfg.ApplySessions == 1 {
		// A link that ran on two sessions frees the second origin's entry
		// (at the next start, when this one fails).
		if err := apply.FoldOrigin(ctx, applyConn, r.names.Origin, r.names.Origin2); err != nil {
			r.log.Warn("target: the second apply session's origin is kept for now", "reason", err.Error())
		}
	}
	start, err := apply.OriginProgress(ctx, applyConn, r.names.Origin, r.names.Origin2)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	var second *pgx.Conn
	if r.cfg.ApplySessions != 1 {
		if second = r.secondApplySession(ctx); second != nil {
			r.noteSession(ctx, second)
			defer second.Close(context.WithoutCancel(ctx))
		}
	}
	format, why, err := r.streamFormat(ctx, applyConn)
	if err != nil {
		return err
	}
	r.cfg.Live.SetStreamFormat(format)
	spoolDir := spoolDir(os.TempDir(), r.cfg.Name)
	defer os.Remove(spoolDir) // the streamer removes its files; an empty folder is no use to anyone
	streamer := stream.New(stream.Options{
		Conn: sourceStreamConfig(r.src), Slot: r.names.Slot, Publication: r.names.Publication,
		StartLSN: start, SpoolDir: spoolDir, StatusInterval: statusInterval, Logger: r.log,
		Binary: format == formatBinary,
	})
	pause := state.NewPauser(r.tgt, r.cfg.Name)
	joins, err := r.loadJoins(ctx)
	if err != nil {
		return err
	}
	ddl, err := r.newDDLCarrier(ctx, syncAt)
	if err != nil {
		return err
	}
	ddl.joins = joins
	defer ddl.close(ctx)
	applier := apply.New(apply.Options{
		SchemaChange: ddl.change,
		Conn:         applyConn, Origin: r.names.Origin, Second: second, SecondOrigin: r.names.Origin2,
		Logger: r.log, OnApplied: streamer.SetApplied, Gate: pause,
		SourceAhead: func() change.LSN { return change.LSN(r.heartbeatLSN.Load()) },
		Joining:     joins.decide,
		SyncLSN: func(table string) (change.LSN, bool) {
			lsn, ok := syncAt[table]
			return lsn, ok
		},
		ProgressSQL: `UPDATE pglink.progress SET applied_lsn = $1::text::pg_lsn, applied_commit_time = $2,
			applied_at = now(), txns_applied = txns_applied + $3, changes_applied = changes_applied + $4
			WHERE link = ` + quote.Literal(r.cfg.Name),
	})
	defer r.cfg.Live.session(applier, streamer, start, func() change.LSN { return change.LSN(r.heartbeatLSN.Load()) })()
	r.log.Info("streaming", "from", start.String(), "slot", r.names.Slot, "stream_format", format, "because", why)
	changes := make(chan *change.Change, queueSize)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return onSide(endpoint.Source, streamer.Run(gctx, changes)) })
	g.Go(func() error { return onSide(endpoint.Target, applier.Run(gctx, changes)) })
	g.Go(func() error { return r.heartbeat(gctx) })
	g.Go(func() error { return pause.Poll(gctx) })
	g.Go(func() error { return r.report(gctx, streamer, applier) })
	g.Go(func() error { return r.joinTables(gctx, joins) })
	err = g.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return ctx.Err()
	}
	var held *ErrDDLHeld
	var refused *apply.SchemaChangeError
	if errors.As(err, &refused) && !errors.As(err, &held) {
		if rerr := ddl.recordRefused(ctx, err); rerr != nil {
			r.log.Warn("could not record the schema change the target refused", "error", rerr)
		}
	}
	return err
}

// secondApplySession opens the apply's second target session (see
// apply.Options.Second), or returns nil, saying why, when it cannot: the
// apply then works on one session.
func (r *runner) secondApplySession(ctx context.Context) *pgx.Conn {
	conn, err := r.tgt.Connect(ctx)
	if err == nil {
		if err = apply.PrepareSession(ctx, conn); err != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}
	if err != nil {
		r.log.Warn("target: the apply works on one session", "reason", err.Error())
		return nil
	}
	return conn
}

// sourceStreamConfig returns the replication connection settings; the
// session settings make the source's text output exact and unambiguous,
// as native logical replication's walreceiver does.
func sourceStreamConfig(src *endpoint.Endpoint) *pgconn.Config {
	cfg := src.Config.Config.Copy()
	cfg.RuntimeParams["DateStyle"] = "ISO"
	cfg.RuntimeParams["IntervalStyle"] = "postgres"
	cfg.RuntimeParams["extra_float_digits"] = "3"
	return cfg
}

// heartbeat writes a transactional logical message into the source's WAL
// every HeartbeatInterval, on its own session.
func (r *runner) heartbeat(ctx context.Context) error {
	conn, err := r.src.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tick := time.NewTicker(HeartbeatInterval)
	defer tick.Stop()
	for {
		var at string
		err := state.ControlQuery(ctx, endpoint.Source, "the heartbeat", func(ctx context.Context) error {
			return conn.QueryRow(ctx, `SELECT pg_logical_emit_message(true, $1, $2)::text`, heartbeatPrefix, r.cfg.Name).Scan(&at)
		})
		if err != nil {
			return fmt.Errorf("source: write heartbeat: %w", err)
		}
		r.heartbeatLSN.Store(uint64(state.ParseLSN(&at)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// report publishes the running process's view every second: lag in
// seconds, throughput and the source's WAL end. A link marked broken goes
// back to replicating once changes flow again.
func (r *runner) report(ctx context.Context, s *stream.Streamer, a *apply.Applier) error {
	conn, err := r.tgt.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The report is rewritten every second: one lost in a crash of the
	// target is worth no WAL flush of its own (a hundred links, a hundred
	// flushes a second).
	if _, err := conn.Exec(ctx, `SET synchronous_commit = off`); err != nil {
		return fmt.Errorf("target: status report session: %w", err)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prev, prevAt := a.Stats(), time.Now()
	healthy := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		st, ss, now := a.Stats(), s.Stats(), time.Now()
		secs := now.Sub(prevAt).Seconds()
		lag := lagSeconds(st, ss, s.OldestPending, now)
		err := state.ControlQuery(ctx, endpoint.Target, "the status report", func(ctx context.Context) error {
			_, err := conn.Exec(ctx, `UPDATE pglink.links SET lag_seconds = $2, txn_per_sec = $3, changes_per_sec = $4,
			server_wal_end = coalesce(nullif($5, '0/0')::pg_lsn, server_wal_end), updated_at = now() WHERE name = $1`, r.cfg.Name, lag,
				float64(st.Txns-prev.Txns)/secs, float64(st.Changes-prev.Changes)/secs, ss.ServerWALEnd.String())
			return err
		})
		if err != nil {
			return fmt.Errorf("target: report status: %w", err)
		}
		if !healthy && (st.LastEndLSN != prev.LastEndLSN || lag == 0) {
			healthy = true
			if err := r.markHealthy(ctx, conn); err != nil {
				return err
			}
			r.healthy.Store(true)
		}
		prev, prevAt = st, now
	}
}

func (r *runner) markHealthy(ctx context.Context, conn *pgx.Conn) error {
	err := state.ControlQuery(ctx, endpoint.Target, "the record of a healthy link", func(ctx context.Context) error {
		_, err := conn.Exec(ctx, `UPDATE pglink.links SET phase = 'replicating', last_error = NULL, remedy = NULL
		WHERE name = $1 AND phase IN ('replicating', 'broken')`, r.cfg.Name)
		return err
	})
	if err != nil {
		return fmt.Errorf("target: record link %s healthy: %w", r.cfg.Name, err)
	}
	r.cfg.Live.SetState(string(state.PhaseReplicating))
	return nil
}

// lagSeconds is how far the target is behind the source at now: the age
// of the oldest source transaction the stream has passed on that the
// target has not applied (its source commit time, so the source's and
// pglink's clocks are compared), or 0 when the target has applied
// everything received and the stream is current. When neither holds (a
// transaction still being received, or a stream gone quiet) it is the
// age of the last applied source commit, an upper bound.
func lagSeconds(a apply.Stats, s stream.Stats, oldest func(applied change.LSN) (time.Time, bool), now time.Time) float64 {
	if at, ok := oldest(a.LastEndLSN); ok {
		return max(0, now.Sub(at).Seconds())
	}
	if a.LastEndLSN >= s.ReceivedLSN && now.Sub(s.LastMessage) < 3*HeartbeatInterval+5*time.Second {
		return 0
	}
	if a.LastCommitTime.IsZero() {
		return now.Sub(s.LastMessage).Seconds()
	}
	return max(0, now.Sub(a.LastCommitTime).Seconds())
}

// ended returns ErrFailedOver when a failover has taken the link over (or
// a forced one is stopping it), ErrLinkGone when the link was removed.
func (r *runner) ended(ctx context.Context) error {
	var phase state.Phase
	var kind *string
	err := state.ControlQuery(ctx, endpoint.Target, "the read of the link's phase", func(ctx context.Context) error {
		return r.tgtConn.QueryRow(ctx, `SELECT phase, failover_kind FROM pglink.links WHERE name = $1`, r.cfg.Name).Scan(&phase, &kind)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return state.ErrLinkGone
	case err != nil:
		return fmt.Errorf("target: read link %s: %w", r.cfg.Name, err)
	case phase == state.PhaseFailedOver, phase == state.PhaseFailingOver && state.Deref(kind) == "forced":
		return state.ErrFailedOver
	}
	return nil
}

// sleepUnlessEnded waits d between two attempts to stream, and stops
// early when the link ends (a forced failover of a link whose source is
// gone must not wait for the backoff).
func (r *runner) sleepUnlessEnded(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if r.tgtConn != nil && !r.tgtConn.IsClosed() {
			if err := r.ended(ctx); errors.Is(err, state.ErrFailedOver) || errors.Is(err, state.ErrLinkGone) {
				return err
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		if err := wait.Sleep(ctx, min(left, 250*time.Millisecond)); err != nil {
			return err
		}
	}
}

// noteEnded shows in the live view why the link stopped for good.
func (r *runner) noteEnded(err error) {
	if errors.Is(err, state.ErrFailedOver) {
		r.cfg.Live.SetState(string(state.PhaseFailedOver))
		return
	}
	r.cfg.Live.SetState(report.LiveEnded)
}
