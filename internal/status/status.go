package status

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
)

// Read reads a link's status from the target, and from the source when
// source is not empty (its current WAL position and the slot). Both are
// read at once, each in one session whose queries take one round trip
// apiece, so a status answers in about one connection's time even when a
// seeding keeps the machine's cores busy. It never waits long: a lock
// held on pglink's state tables costs at most statusLockTimeout, and a
// source that does not answer within statusSourceWait is left out with a
// warning.
func Read(ctx context.Context, name, target, source string) (*report.Status, error) {
	return ReadWAL(ctx, name, target, source, 0)
}

// ReadWAL is Read with the WAL guard's threshold: walWarn bytes, or when
// 0 the default rule (report.WALWarnThreshold).
func ReadWAL(ctx context.Context, name, target, source string, walWarn int64) (*report.Status, error) {
	if err := state.ValidateName(name); err != nil {
		return nil, err
	}
	tgt, err := endpoint.Parse(endpoint.Target, target)
	if err != nil {
		return nil, err
	}
	var src *endpoint.Endpoint
	if source != "" {
		if src, err = endpoint.Parse(endpoint.Source, source); err != nil {
			return nil, err
		}
	}
	srcDone := make(chan sourceState, 1)
	if src != nil {
		sctx, cancel := context.WithTimeout(ctx, statusSourceWait)
		defer cancel()
		go func() { srcDone <- readSourceState(sctx, src, state.NamesFor(name).Slot) }()
	}
	conn, err := statusEndpoint(tgt).Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	st, applied, err := targetStatus(ctx, conn, name)
	if err != nil {
		return nil, err
	}
	if src != nil {
		(<-srcDone).apply(st, walWarn)
	}
	fillLag(st, applied)
	return st, nil
}

// How long a status waits for a lock on pglink's state tables (held by a
// session that changes their definition, or locks them), and for the
// source: past these it answers with what it has.
const (
	statusLockTimeout = 100 * time.Millisecond
	statusSourceWait  = time.Second
)

// statusEndpoint makes a status session cheap and bounded: each query in
// one round trip (no prepare and describe first, which a session this
// short never reuses), and lock waits cut short.
func statusEndpoint(ep *endpoint.Endpoint) *endpoint.Endpoint {
	ep = ep.WithRuntimeParams(map[string]string{"lock_timeout": fmt.Sprint(statusLockTimeout.Milliseconds())})
	ep.Config.DefaultQueryExecMode = pgx.QueryExecModeExec
	return ep
}

func targetStatus(ctx context.Context, conn *pgx.Conn, name string) (*report.Status, *state.Link, error) {
	exists, err := state.Exists(ctx, conn)
	if err != nil {
		return nil, nil, err
	}
	if !exists {
		return nil, nil, fmt.Errorf("target: there is no link %s in database %s (no pglink schema); check --target and --name", name, conn.Config().Database)
	}
	row, err := state.Load(ctx, conn, name)
	if errors.Is(err, state.ErrNoLink) {
		return nil, nil, fmt.Errorf("target: there is no link %s in database %s; check --target and --name", name, conn.Config().Database)
	}
	if lockNotAvailable(err) {
		return nil, nil, fmt.Errorf("target: another session locks pglink's state tables (pglink.links or pglink.progress) and the status would wait for it; "+
			"find it with SELECT pid, query FROM pg_locks JOIN pg_stat_activity USING (pid) WHERE relation = 'pglink.links'::regclass, then try again: %w", err)
	}
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	tables, err := state.LoadTables(ctx, conn, name)
	if lockNotAvailable(err) {
		warnings = append(warnings, "target: another session locks pglink.tables: the tables' seeding progress is left out; try again")
	} else if err != nil {
		return nil, nil, err
	}
	if state.GuardExpected(row) && err == nil {
		warnings = append(warnings, state.GuardWarnings(ctx, conn, name, tables)...)
	}
	running, err := state.LeaseHeld(ctx, conn, name)
	if err != nil {
		return nil, nil, err
	}
	st := &report.Status{Name: name, Phase: row.Phase, Running: running, Tables: statusTables(tables),
		CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt, SlotName: state.NamesFor(name).Slot, Warnings: warnings}
	ddlStatus(ctx, conn, st)
	if row.LastError != nil {
		st.LastError = *row.LastError
	}
	if row.Remedy != nil {
		st.Remedy = *row.Remedy
	}
	if row.Phase == state.PhaseFailingOver || row.Phase == state.PhaseFailedOver && state.Deref(row.FailoverStep) == state.FailoverStepCut {
		runs, err := state.FailoverRuns(ctx, conn, name)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case state.Deref(row.FailoverStep).ByScript():
			st.LastError = fmt.Sprintf("a failover script (pglink failover --script) runs this link's %s failover, or was interrupted; %s", state.Deref(row.FailoverKind), state.Deref(row.FailoverStep).Stage())
			st.Remedy = "let the script finish; if it was interrupted, run its remaining steps or its undo by hand (the script holds both)"
		case !runs:
			st.LastError = fmt.Sprintf("the %s failover of this link was interrupted: no pglink failover runs it, and %s",
				state.Deref(row.FailoverKind), state.Deref(row.FailoverStep).Stage())
			st.Remedy = "run the same pglink failover again: a planned one undoes what the interrupted one did and starts over, or finishes it when the target took writes already; pglink failover --forced finishes it without the source"
			if row.Phase == state.PhaseFailedOver {
				st.Remedy = fmt.Sprintf("run pglink failover --%s again to finish the cut (it drops the source's slot when the source answers), or pglink drop to remove what is left of the link", state.Deref(row.FailoverKind))
			}
		}
	}
	if row.AppliedLSN != 0 {
		st.AppliedLSN = row.AppliedLSN.String()
	}
	if row.AppliedCommitTime != nil {
		st.LastApplied = *row.AppliedCommitTime
	}
	if row.ServerWALEnd != 0 && row.LagSeconds != nil {
		// The running link's view of the source, while it has one.
		st.SourceLSN = row.ServerWALEnd.String()
	}
	if running {
		st.ApplyTxnPerSec, st.ApplyChangePerSec = row.TxnPerSec, row.ChangesPerSec
	}
	fillETAs(ctx, conn, name, st)
	return st, row, nil
}

// lockNotAvailable says whether err is a lock wait cut short by
// lock_timeout.
func lockNotAvailable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// fillETAs estimates, for tables being copied, the time left from the rate so far.
func fillETAs(ctx context.Context, conn *pgx.Conn, name string, st *report.Status) {
	rows, err := conn.Query(ctx, `SELECT table_schema || '.' || table_name, extract(epoch FROM now() - copy_started)
		FROM pglink.tables WHERE link = $1 AND state = 'copying' AND copy_started IS NOT NULL`, name)
	if err != nil {
		return
	}
	elapsed := map[string]float64{}
	for rows.Next() {
		var t string
		var secs float64
		if rows.Scan(&t, &secs) == nil {
			elapsed[t] = secs
		}
	}
	rows.Close()
	for i, t := range st.Tables {
		secs, ok := elapsed[t.Name]
		if !ok || t.BytesCopied == 0 || t.EstBytes <= t.BytesCopied || secs <= 0 {
			continue
		}
		eta := float64(t.EstBytes-t.BytesCopied) / (float64(t.BytesCopied) / secs)
		st.Tables[i].ETASeconds = &eta
	}
}

// sourceState is what a status reads from the source.
type sourceState struct {
	err        error
	lsn        string
	fenced     bool
	slotFound  bool
	slotActive bool
	retained   int64
	walStatus  string
	keepSize   int64 // max_slot_wal_keep_size in bytes, -1: none
}

// readSourceState reads the source's current position, its write fence
// and the link's slot.
func readSourceState(ctx context.Context, src *endpoint.Endpoint, slot string) (s sourceState) {
	conn, err := statusEndpoint(src).Connect(ctx)
	if err != nil {
		s.err = sourceWaitError(ctx, err)
		return s
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&s.lsn); err != nil {
		s.err = sourceWaitError(ctx, fmt.Errorf("source: read the current WAL position: %w", err))
		return s
	}
	if s.fenced, err = state.SourceFenced(ctx, conn); err != nil {
		s.err = sourceWaitError(ctx, err)
		return s
	}
	err = conn.QueryRow(ctx, `SELECT active, coalesce(pg_current_wal_lsn() - restart_lsn, 0)::bigint, coalesce(wal_status, ''),
		pg_size_bytes(current_setting('max_slot_wal_keep_size'))
		FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&s.slotActive, &s.retained, &s.walStatus, &s.keepSize)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		s.err = sourceWaitError(ctx, fmt.Errorf("source: read slot %s: %w", slot, err))
	default:
		s.slotFound = true
	}
	return s
}

// sourceWaitError says that the source did not answer in time, when that
// is why err happened.
func sourceWaitError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("source: no answer within %s; the status leaves out the source's position and slot (is the source up and reachable?)", statusSourceWait)
	}
	return err
}

// apply adds the source's state to a status read from the target.
func (s sourceState) apply(st *report.Status, walWarn int64) {
	// The position the running link last reported is not the source's
	// now: when the source cannot be read, its position and the lag in
	// bytes are unknown.
	st.SourceLSN = s.lsn
	if s.err != nil {
		st.Warnings = append(st.Warnings, s.err.Error())
		return
	}
	if st.Phase == state.PhaseFailedOver {
		fenceStatus(st, s.fenced)
	}
	if !s.slotFound {
		if st.Phase != state.PhaseFailedOver && st.Phase != state.PhaseSeeding {
			st.Warnings = append(st.Warnings, fmt.Sprintf("source: the replication slot %s is missing; the link cannot stream", st.SlotName))
		}
		return
	}
	st.SlotActive, st.SlotRetainedBytes = &s.slotActive, &s.retained
	if st.Phase != state.PhaseFailedOver {
		st.WALWarnBytes = report.WALWarnThreshold(s.keepSize, walWarn)
		if w := report.WALWarning(st.SlotName, s.retained, st.WALWarnBytes); w != "" {
			st.Warnings = append(st.Warnings, w)
		}
	}
	switch {
	case st.Phase == state.PhaseFailedOver:
	case s.walStatus == "lost":
		st.Warnings = append(st.Warnings, state.SlotLostError(st.Name, st.SlotName).Error())
	case s.walStatus == "unreserved":
		st.Warnings = append(st.Warnings, fmt.Sprintf("source: the replication slot %s holds more WAL than max_slot_wal_keep_size allows (wal_status unreserved): "+
			"the source invalidates it at its next checkpoint unless the link catches up first, and the link must then be seeded again; "+
			"raise max_slot_wal_keep_size on the source (or set it to -1) now", st.SlotName))
	}
}

// fillLag computes lag in bytes (source position minus applied position)
// and seconds (the running process's measure, or the age of the last
// applied commit when no process runs the link).
func fillLag(st *report.Status, row *state.Link) {
	if st.AppliedLSN == "" || st.SourceLSN == "" {
		return
	}
	src := state.ParseLSN(&st.SourceLSN)
	b := int64(0)
	if src > row.AppliedLSN {
		b = int64(src - row.AppliedLSN)
	}
	st.LagBytes = &b
	switch {
	case st.Running && row.LagSeconds != nil && time.Since(row.UpdatedAt) < 10*time.Second:
		s := *row.LagSeconds
		st.LagSeconds = &s
	case row.AppliedCommitTime != nil:
		s := max(0, time.Since(*row.AppliedCommitTime).Seconds())
		st.LagSeconds = &s
	}
}

// fenceStatus tells, after a failover, whether the old source refuses
// writes (the fence of pglink failover); when it does not, both sides take
// writes: split brain.
func fenceStatus(st *report.Status, fenced bool) {
	st.SourceFenced = &fenced
	if !fenced {
		st.SplitBrain = true
		st.Warnings = append(st.Warnings, fmt.Sprintf("split brain: the link has failed over and the old source takes writes too; "+
			"writes there never reach the target. Run pglink fence-source --name %s --source ... to make it refuse writes "+
			"(or pglink release-source was run on purpose: then ignore this)", st.Name))
	}
}

// statusTables converts table rows for the status output, with an ETA from
// the copy rate when a table is being copied.
func statusTables(ts []state.Table) []report.Table {
	out := make([]report.Table, 0, len(ts))
	for _, t := range ts {
		mt := report.Table{Name: t.Key(), State: t.State, RowsCopied: t.Rows, BytesCopied: t.Bytes,
			EstRows: t.EstRows, EstBytes: t.EstBytes}
		if t.SyncLSN != 0 {
			mt.SyncLSN = t.SyncLSN.String()
		}
		out = append(out, mt)
	}
	return out
}
