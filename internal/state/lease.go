package state

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/wait"
)

// A Lease is a session-level advisory lock in the target database, held by
// the one process that drives a link; it ends with that process's session,
// so a killed process never leaves a stale Lease behind.
//
// The session can also end under a process that goes on (a target restart,
// a network fault, a terminated backend): from then on another process
// could take the Lease while this one still applies. So a kept Lease (see
// keep) is watched: work bound to it (see Bind) is stopped the moment its
// session is found lost, and goes on only once the Lease is taken again;
// if another process took it meanwhile, this one stops.
type Lease struct {
	ep  *endpoint.Endpoint
	key int64
	// what names the lease in messages ("the lease of link app").
	what string
	log  *slog.Logger

	mu      sync.Mutex // guards the fields below and every use of conn
	conn    *pgx.Conn  // nil while the lease is lost
	pid     uint32     // the server process of the session that held it last
	start   time.Time  // and when that process started (a pid is reused)
	err     error      // set when another process took the lease
	changed chan struct{}
	stop    context.CancelFunc
	done    chan struct{} // closed when the keeper has ended
}

// ErrLeaseHeld says another process runs the link.
var ErrLeaseHeld = errors.New("another pglink process runs this link (it holds the link's lease)")

// ErrLeaseLost says the session that held a lease ended under the work
// bound to it; the work stopped and goes on once the lease is held again.
var ErrLeaseLost = errors.New("the session that held the lease on the target ended, so the work bound to it stopped; it goes on once the lease is taken again")

// ErrLeaseTaken says this process lost its lease and another took it.
var ErrLeaseTaken = errors.New("this process lost its lease (its session on the target ended) and another pglink process took it")

func leaseKey(link string) int64 {
	h := fnv.New64a()
	h.Write([]byte(NamesFor(link).LockKey))
	return int64(h.Sum64())
}

// leaseGrace is how long a lease (the link's or a failover's) is waited for.
const leaseGrace = 3 * time.Second

// leaseCheck is how often a kept lease's session is checked, and how
// often a lost lease is tried again. A check is one empty query.
const leaseCheck = 500 * time.Millisecond

// leasePingTimeout bounds one check: a session that does not answer in it
// (a half-open connection) counts as lost.
const leasePingTimeout = 5 * time.Second

// AcquireLease takes the link's lease or says who holds it.
func AcquireLease(ctx context.Context, ep *endpoint.Endpoint, link string) (*Lease, error) {
	l, err := TakeLease(ctx, ep, leaseKey(link), "the lease of link "+link)
	if errors.Is(err, ErrLeaseHeld) {
		return nil, fmt.Errorf("target: link %s: %w; stop that process first, or use pglink status to watch it", link, ErrLeaseHeld)
	}
	return l, err
}

// TakeLease takes the advisory lock key on a session of its own, waiting
// out a just-killed holder; it returns ErrLeaseHeld when another session
// holds it.
func TakeLease(ctx context.Context, ep *endpoint.Endpoint, key int64, what string) (*Lease, error) {
	conn, err := ep.Connect(ctx)
	if err != nil {
		return nil, err
	}
	got, err := lockWithGrace(ctx, conn, key)
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("target: take %s: %w", what, err)
	}
	if !got {
		conn.Close(context.WithoutCancel(ctx))
		return nil, ErrLeaseHeld
	}
	start, err := sessionStart(ctx, conn)
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("target: take %s: %w", what, err)
	}
	return &Lease{ep: ep, key: key, what: what, conn: conn, pid: conn.PgConn().PID(), start: start,
		changed: make(chan struct{})}, nil
}

// sessionStart returns when the server process of conn started.
func sessionStart(ctx context.Context, conn *pgx.Conn) (time.Time, error) {
	var start time.Time
	err := conn.QueryRow(ctx, `SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()`).Scan(&start)
	return start, err
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

// Keep watches the lease until release: every leaseCheck it checks the
// session, and once that is lost it takes the lease again. With retake
// false a lost lease is not taken again: work bound to it stops for good.
func (l *Lease) Keep(ctx context.Context, log *slog.Logger, retake bool) {
	ctx, l.stop = context.WithCancel(context.WithoutCancel(ctx))
	l.log, l.done = log, make(chan struct{})
	go func() {
		defer close(l.done)
		for wait.Sleep(ctx, leaseCheck) == nil {
			if l.check(ctx) {
				continue
			}
			if !retake {
				l.fail(fmt.Errorf("target: %w", ErrLeaseLost))
				return
			}
			if err := l.retake(ctx); err != nil {
				l.fail(err)
				return
			}
		}
	}()
}

// check reports whether the lease is held, after asking its session when
// it seems to be: a session that fails the check is closed and the lease
// counts as lost, which stops the work bound to it.
func (l *Lease) check(ctx context.Context) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil || l.err != nil {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, leasePingTimeout)
	err := l.conn.Ping(pctx)
	cancel()
	if err == nil || ctx.Err() != nil {
		return err == nil
	}
	if l.log != nil {
		l.log.Warn("target: the session that holds "+l.what+" was lost; the link stops until it holds the lease again", "error", err)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	l.conn.Close(cctx)
	cancel()
	l.conn = nil
	l.signal()
	return false
}

// retake tries once to take the lost lease again. It returns an error only
// when another process holds it now; a target still away is tried again.
func (l *Lease) retake(ctx context.Context) error {
	conn, err := l.ep.Connect(ctx)
	if err != nil {
		return nil
	}
	got, err := lockWithGrace(ctx, conn, l.key)
	holder := uint32(0)
	if err == nil && !got {
		err = conn.QueryRow(ctx, advisoryHolderSQL(l.key)).Scan(&holder)
	}
	if err == nil && !got && holder == l.pid {
		// This process's own lost session, which the server still runs: a
		// network that went silent leaves it there for as long as the
		// connection looks open to the server. It is ended; the next try
		// takes the lease.
		var ended bool
		err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity
			WHERE pid = $1 AND backend_start = $2`, int64(l.pid), l.start).Scan(&ended)
		if ended && l.log != nil {
			l.log.Info("target: ended the earlier session of "+l.what+", which the server still ran", "pid", l.pid)
		}
	}
	var start time.Time
	if err == nil && got {
		start, err = sessionStart(ctx, conn)
	}
	if err != nil || !got {
		conn.Close(context.WithoutCancel(ctx))
	}
	switch {
	case err != nil:
		return nil
	case !got && holder == l.pid:
		return nil // ended above, or ending
	case !got:
		return fmt.Errorf("target: %s: %w: this one stops and leaves the link to it", l.what, ErrLeaseTaken)
	}
	l.mu.Lock()
	l.conn, l.pid, l.start = conn, conn.PgConn().PID(), start
	l.signal()
	l.mu.Unlock()
	if l.log != nil {
		l.log.Info("target: holds " + l.what + " again")
	}
	return nil
}

// Failed says whether the lease was lost for good.
func (l *Lease) Failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err != nil
}

func (l *Lease) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = err
	l.signal()
}

// signal wakes everyone waiting on a change; l.mu is held.
func (l *Lease) signal() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Bind waits until the lease is held and returns a context that is
// cancelled, with cause ErrLeaseLost, as soon as the lease is found lost.
// It fails when the lease cannot be held any more (ErrLeaseTaken).
func (l *Lease) Bind(ctx context.Context) (context.Context, context.CancelFunc, error) {
	for {
		held := l.check(ctx)
		l.mu.Lock()
		changed, err := l.changed, l.err
		l.mu.Unlock()
		if err != nil {
			return nil, nil, err
		}
		if held {
			bctx, cancel := context.WithCancelCause(ctx)
			go func() {
				select {
				case <-changed:
					cancel(ErrLeaseLost)
				case <-bctx.Done():
				}
			}()
			return bctx, func() { cancel(nil) }, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// LostFrom returns ErrLeaseLost, with context, when bctx (from Bind) ended
// because the lease was lost, and err otherwise.
func (l *Lease) LostFrom(bctx context.Context, err error) error {
	if errors.Is(context.Cause(bctx), ErrLeaseLost) {
		return fmt.Errorf("target: %s: %w", l.what, ErrLeaseLost)
	}
	return err
}

func (l *Lease) Release(ctx context.Context) {
	if l == nil {
		return
	}
	if l.stop != nil {
		l.stop()
		<-l.done
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.Close(context.WithoutCancel(ctx))
		l.conn = nil
	}
}

// LeaseHeld reports whether some process holds the link's lease now.
func LeaseHeld(ctx context.Context, conn *pgx.Conn, link string) (bool, error) {
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
	return `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE ` + advisoryLockWhere(key) + `)`
}

// advisoryHolderSQL is a query that returns the server process that holds
// the session-level advisory lock key, or 0.
func advisoryHolderSQL(key int64) string {
	return `SELECT coalesce((SELECT pid FROM pg_locks WHERE ` + advisoryLockWhere(key) + ` LIMIT 1), 0)`
}

func advisoryLockWhere(key int64) string {
	k := uint64(key)
	return fmt.Sprintf(`locktype = 'advisory'
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND classid = %d AND objid = %d AND objsubid = 1 AND granted`, int64(k>>32), int64(k&0xffffffff))
}
