package link

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/wait"
)

// A lease is a session-level advisory lock in the target database, held by
// the one process that drives a link; it ends with that process's session,
// so a killed process never leaves a stale lease behind.
type lease struct {
	conn *pgx.Conn
}

// errLeaseHeld says another process runs the link.
var errLeaseHeld = errors.New("another pglink process runs this link (it holds the link's lease)")

func leaseKey(link string) int64 {
	h := fnv.New64a()
	h.Write([]byte(namesFor(link).LockKey))
	return int64(h.Sum64())
}

// leaseGrace is how long a lease (the link's or a failover's) is waited for.
const leaseGrace = 3 * time.Second

// acquireLease takes the link's lease or says who holds it.
func acquireLease(ctx context.Context, ep *endpoint.Endpoint, link string) (*lease, error) {
	conn, err := ep.Connect(ctx)
	if err != nil {
		return nil, err
	}
	got, err := lockWithGrace(ctx, conn, leaseKey(link))
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("target: take the lease of link %s: %w", link, err)
	}
	if !got {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("target: link %s: %w; stop that process first, or use pglink status to watch it", link, errLeaseHeld)
	}
	return &lease{conn: conn}, nil
}

// lockWithGrace takes the session-level advisory lock key on conn, and
// reports whether it got it. A process that was just killed holds its
// locks until its server session notices the closed connection, so it
// tries for leaseGrace.
func lockWithGrace(ctx context.Context, conn *pgx.Conn, key int64) (bool, error) {
	deadline := time.Now().Add(leaseGrace)
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
			return false, err
		}
		if got || time.Now().After(deadline) {
			return got, nil
		}
		if err := wait.Sleep(ctx, 200*time.Millisecond); err != nil {
			return false, err
		}
	}
}

func (l *lease) release(ctx context.Context) {
	if l != nil && l.conn != nil {
		l.conn.Close(context.WithoutCancel(ctx))
	}
}

// leaseHeld reports whether some process holds the link's lease now.
func leaseHeld(ctx context.Context, conn *pgx.Conn, link string) (bool, error) {
	var held bool
	if err := conn.QueryRow(ctx, LeaseHeldSQL(link)).Scan(&held); err != nil {
		return false, fmt.Errorf("target: check the lease of link %s: %w", link, err)
	}
	return held, nil
}

// LeaseHeldSQL is a query that returns true while a process runs the link
// (for scripts that must wait for it to stop).
func LeaseHeldSQL(name string) string { return advisoryHeldSQL(leaseKey(name)) }

// advisoryHeldSQL is a query that returns true while some session of the
// database holds the session-level advisory lock key.
func advisoryHeldSQL(key int64) string {
	k := uint64(key)
	return fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND classid = %d AND objid = %d AND objsubid = 1 AND granted)`, int64(k>>32), int64(k&0xffffffff))
}
