package stream

import (
	"net"
	"sync/atomic"
	"time"
)

// DefaultStatusGap is the least time between two standby status updates
// sent because the apply committed (Options.StatusGap when zero): at 1,000
// source transactions a second, committed one by one when caught up, the
// source hears at most 100 updates a second, each at most this late.
const DefaultStatusGap = 10 * time.Millisecond

// pastDeadline is a read deadline that has passed: set on the connection,
// it makes a read waiting there return at once with a timeout.
var pastDeadline = time.Unix(1, 0)

// waker lets another goroutine (the apply's, through SetApplied) tell the
// session that the applied position moved, so that the session sends a
// standby status soon instead of at its next timer. The session may be
// waiting in a receive (a read deadline in the past interrupts it, and the
// connection stays usable: a timeout is not an error for pgconn) or in
// emit on a full channel (ch wakes it).
type waker struct {
	pending atomic.Bool // the applied position moved since the last status
	ch      chan struct{}
	conn    net.Conn
}

func newWaker(conn net.Conn) *waker {
	return &waker{ch: make(chan struct{}, 1), conn: conn}
}

// poke marks a status as wanted and wakes the session, once until the
// session sends it: pokes in between cost an atomic swap.
func (w *waker) poke() {
	if w.pending.Swap(true) {
		return
	}
	w.interrupt()
}

// interrupt wakes the session wherever it waits. Safe from any goroutine:
// net.Conn allows SetReadDeadline concurrently with a Read.
func (w *waker) interrupt() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
	_ = w.conn.SetReadDeadline(pastDeadline) // fails only on a closed connection, which the receive reports
}
