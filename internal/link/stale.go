package link

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/endpoint"
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
	err := controlQuery(ctx, endpoint.Target, "the read of a session's start", func(ctx context.Context) error {
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
		err := controlQuery(ctx, endpoint.Target, "the end of an earlier apply session", func(ctx context.Context) error {
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
	deadline := time.Now().Add(controlTimeout)
	for time.Now().Before(deadline) {
		var there bool
		err := controlQuery(ctx, endpoint.Target, "the wait for an earlier apply session's end", func(ctx context.Context) error {
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
	if err == nil || sideOf(err) != "" || errors.Is(err, context.Canceled) || errors.Is(err, errFailedOver) || errors.Is(err, errLinkGone) {
		return err
	}
	return fmt.Errorf("%s: %w", side, err)
}
