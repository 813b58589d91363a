package link

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/wait"
)

// walCheckInterval is how often the WAL guard reads the slot; tests
// shorten it.
var walCheckInterval = 10 * time.Second

// walWarnRepeat is how often the log repeats the WAL guard's warning
// while the slot stays above the threshold.
const walWarnRepeat = 10 * time.Minute

// slotWALSQL reads the WAL the slot keeps on the source, and the source's
// limit for it in bytes (-1: none).
const slotWALSQL = `SELECT (SELECT coalesce(pg_current_wal_lsn() - restart_lsn, 0)::bigint FROM pg_replication_slots WHERE slot_name = $1),
	pg_size_bytes(current_setting('max_slot_wal_keep_size'))`

// guardWAL watches, in the background and on a session of its own, how
// much WAL the link's slot retains on the source: past the threshold it
// logs a warning (the live view says it too). pglink never drops the slot
// itself. The returned function stops the watch.
func (r *runner) guardWAL(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.WithoutCancel(ctx))
			}
		}()
		var warned time.Time
		for {
			if conn == nil || conn.IsClosed() {
				conn, _ = r.src.Connect(ctx) // a lost source is the stream's to report
			}
			if conn != nil {
				warned = r.checkWAL(ctx, conn, warned)
			}
			if wait.Sleep(ctx, walCheckInterval) != nil {
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// checkWAL reads the slot once and warns when it retains too much; warned
// is when the log last said so (zero: not above the threshold).
func (r *runner) checkWAL(ctx context.Context, conn *pgx.Conn, warned time.Time) time.Time {
	var retained *int64
	var keep int64
	err := state.ControlQuery(ctx, endpoint.Source, "the read of the slot's WAL", func(ctx context.Context) error {
		return conn.QueryRow(ctx, slotWALSQL, r.names.Slot).Scan(&retained, &keep)
	})
	if err != nil {
		if ctx.Err() == nil {
			r.log.Debug("source: could not read the WAL the slot retains", "error", err)
			conn.Close(context.WithoutCancel(ctx))
		}
		return warned
	}
	if retained == nil {
		return warned // no slot yet
	}
	threshold := report.WALWarnThreshold(keep, r.cfg.WALWarnBytes)
	r.cfg.Live.slot(*retained, threshold)
	msg := report.WALWarning(r.names.Slot, *retained, threshold)
	switch {
	case msg == "" && !warned.IsZero():
		r.log.Info("source: the slot's retained WAL is below the warning threshold again", "retained_bytes", *retained, "threshold_bytes", threshold)
		return time.Time{}
	case msg != "" && time.Since(warned) >= walWarnRepeat:
		r.log.Warn(msg, "retained_bytes", *retained, "threshold_bytes", threshold)
		return time.Now()
	}
	return warned
}
