package link

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/wait"
)

// targetSession names one server process of the target: a process id
// alone may be taken again by a later session.
type targetSession struct {
	pid   uint32
	start time.Time
}

// noteSession remembers an apply session of the running replication
// session, to end it at the next one's start if it is still there.
func (r *runner) noteSession(ctx context.Context, conn *pgx.Conn) {
	var start time.Time
	err := state.ControlQuery(ctx, endpoint.Target, "the read of a session's start", func(ctx context.Context) error {
		return conn.QueryRow(ctx, `SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()`).Scan(&start)
	})
	if err != nil {
		r.log.Debug("target: the apply session will not be ended by a later session", "error", err)
		return
	}
	r.stale = append(r.stale, targetSession{conn.PgConn().PID(), start})
}

// endStaleSessions ends the apply sessions of earlier replication sessions
// that the target still runs. A network that went silent leaves them
// there: the server waits for pglink as long as the network keeps the
// connection open, and they hold the link's replication origins (which a
// session can bind only when no other has them) and the row locks of an
// unfinished batch.
func (r *runner) endStaleSessions(ctx context.Context) error {
	if len(r.stale) == 0 {
		return nil
	}
	for _, s := range r.stale {
		var left bool
		err := state.ControlQuery(ctx, endpoint.Target, "the end of an earlier apply session", func(ctx context.Context) error {
			return r.tgtConn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity
				WHERE pid = $1 AND backend_start = $2`, int64(s.pid), s.start).Scan(&left)
		})
		if err != nil {
			return fmt.Errorf("target: end an earlier apply session (process %d): %w", s.pid, err)
		}
		if left {
			r.log.Info("target: ended an apply session of an earlier replication session", "pid", s.pid)
			if err := r.waitSessionGone(ctx, s); err != nil {
				return err
			}
		}
	}
	r.stale = r.stale[:0]
	return nil
}

// waitSessionGone waits until a terminated session has exited and let go
// of its origin.
func (r *runner) waitSessionGone(ctx context.Context, s targetSession) error {
	deadline := time.Now().Add(state.ControlTimeout)
	for time.Now().Before(deadline) {
		var there bool
		err := state.ControlQuery(ctx, endpoint.Target, "the wait for an earlier apply session's end", func(ctx context.Context) error {
			return r.tgtConn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2)`,
				int64(s.pid), s.start).Scan(&there)
		})
		if err != nil || !there {
			return err
		}
		if err := wait.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return errors.New("target: an earlier apply session does not end")
}

// onSide makes err name side when it names none.
func onSide(side endpoint.Side, err error) error {
	if err == nil || sideOf(err) != "" || errors.Is(err, context.Canceled) || errors.Is(err, state.ErrFailedOver) || errors.Is(err, state.ErrLinkGone) {
		return err
	}
	return fmt.Errorf("%s: %w", side, err)
}

// seedingAppName is the application_name of a link's copy sessions, so
// that a later attempt can find those an earlier one left behind.
func seedingAppName(link string) string { return "pglink seed " + link }

// endStaleSeeding ends what an earlier attempt at seeding left running on
// either side: a network that went silent leaves its copy sessions there,
// holding locks on the target's tables (the next attempt empties them
// first) and the source's snapshot, and leaves the session that exported
// the snapshot holding a replication slot. Only this process runs the
// link (it holds the lease), and it copies nothing now: whatever runs
// under the link's seeding name, or holds its slots, is stale.
func (r *runner) endStaleSeeding(ctx context.Context) error {
	// On the source, the sessions of that name and those that hold the
	// link's slots, in one statement.
	const endSessions = `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND (datname = current_database() AND application_name = $1
			OR pid IN (SELECT active_pid FROM pg_replication_slots WHERE slot_name = ANY($2)))`
	app := seedingAppName(r.cfg.Name)
	for _, s := range []struct {
		side  endpoint.Side
		conn  *pgx.Conn
		slots []string
	}{
		{endpoint.Target, r.tgtConn, nil},
		{endpoint.Source, r.srcConn, []string{r.names.Slot, r.names.SyncSlot}},
	} {
		var ended int
		err := state.ControlQuery(ctx, s.side, "the end of an earlier seeding's sessions", func(ctx context.Context) error {
			return s.conn.QueryRow(ctx, endSessions, app, s.slots).Scan(&ended)
		})
		if err != nil {
			return fmt.Errorf("%s: end the sessions an earlier seeding left: %w", s.side, err)
		}
		if ended > 0 {
			r.log.Info(string(s.side)+": ended the sessions an earlier seeding left", "sessions", ended)
		}
	}
	return r.waitSyncSlotFree(ctx)
}

// waitSyncSlotFree waits until no session holds the link's slots and the
// temporary slot of an ended session is gone, for a new one of its name.
func (r *runner) waitSyncSlotFree(ctx context.Context) error {
	deadline := time.Now().Add(state.ControlTimeout)
	for {
		var busy bool
		err := state.ControlQuery(ctx, endpoint.Source, "the wait for the link's slots", func(ctx context.Context) error {
			return r.srcConn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots
				WHERE slot_name = $1 AND active_pid IS NOT NULL OR slot_name = $2)`, r.names.Slot, r.names.SyncSlot).Scan(&busy)
		})
		if err != nil || !busy {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("source: the replication slots of link %s are still held by an earlier seeding's session %s after it was ended", r.cfg.Name, state.ControlTimeout)
		}
		if err := wait.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}
