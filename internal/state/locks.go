package state

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/wait"
)

// lockRetryFor is how long pglink keeps trying to take the locks of a
// change to the source's tables before it gives up with an error.
const lockRetryFor = 2 * time.Minute

// yieldingLocks runs fn in a transaction on the source that gives way to
// the applications' own: each lock it waits for, it waits for at most a
// tenth of the server's deadlock_timeout, and the statements fn marks
// (see boundedExec) run within half of it. A session of the application
// that waits for a lock pglink holds is therefore never the one the
// server ends for a deadlock: its deadlock check comes after
// deadlock_timeout, by which time pglink's transaction has given up and
// let it go. Given up, the transaction is tried again after a short,
// growing pause, for lockRetryFor at most; logf, when set, is told once
// that it waits.
func yieldingLocks(ctx context.Context, conn *pgx.Conn, what string, logf func(string), fn func(tx pgx.Tx, bound time.Duration) error) error {
	var deadlock time.Duration
	var setting string
	if err := conn.QueryRow(ctx, `SELECT setting FROM pg_catalog.pg_settings WHERE name = 'deadlock_timeout'`).Scan(&setting); err != nil {
		return fmt.Errorf("source: %s: read deadlock_timeout: %w", what, err)
	}
	if ms, err := time.ParseDuration(setting + "ms"); err == nil {
		deadlock = ms
	}
	deadlock = max(deadlock, 20*time.Millisecond)
	giveUp := time.Now().Add(lockRetryFor)
	pause := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", (deadlock/10).Milliseconds())); err != nil {
				return err
			}
			return fn(tx, deadlock/2)
		})
		if err == nil || !lockConflict(err) {
			return err
		}
		if time.Now().After(giveUp) {
			return fmt.Errorf("source: %s: other sessions kept the tables locked for %s (%w); try again when the source is less busy", what, lockRetryFor, err)
		}
		if attempt == 0 && logf != nil {
			logf(fmt.Sprintf("source: %s waits for other sessions' locks; it gives way to them and tries again", what))
		}
		sleep := pause/2 + rand.N(pause)
		if err := wait.Sleep(ctx, sleep); err != nil {
			return err
		}
		pause = min(pause*2, time.Second)
	}
}

// boundedExec runs sql with statement_timeout set to bound for it alone.
func boundedExec(ctx context.Context, tx pgx.Tx, bound time.Duration, sql string) error {
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", max(bound.Milliseconds(), 1))); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, sql); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0")
	return err
}

// lockConflict reports whether err is a lock given up (lock_timeout or
// statement_timeout) or a deadlock.
func lockConflict(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "55P03", "57014", "40P01": // lock_not_available, query_canceled, deadlock_detected
		return true
	}
	return false
}
