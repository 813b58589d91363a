package stream

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// readGather is how long a read of the replication stream waits after a
// read that found little data, so that the next one finds more.
//
// A link that keeps up with the WAL sender would otherwise read each
// message as it arrives: one read system call, one wake-up of pglink and
// one of the Go scheduler per message, and the WAL sender waking pglink
// at each of its sends: the stream would run at the speed of those
// wake-ups.
// Waiting a millisecond lets the messages of that millisecond arrive
// together; it adds at most that much to the lag.
const readGather = time.Millisecond

// gatherSwitch turns the gathering of a connection's reads on once the
// stream has begun: the round trips of the connection's start (the
// startup, the server's version, START_REPLICATION) each read a short
// answer that nothing follows, and a wait after it would only delay the
// next request.
type gatherSwitch struct{ on atomic.Bool }

func (g *gatherSwitch) start() { g.on.Store(true) }

// gathering makes cfg's connections wait up to readGather after a short
// read, once the returned switch is on.
func gathering(cfg *pgconn.Config) (*pgconn.Config, *gatherSwitch) {
	g := &gatherSwitch{}
	dial := cfg.DialFunc
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 5 * time.Minute}).DialContext
	}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &gatherConn{Conn: c, wait: readGather, on: &g.on}, nil
	}
	return cfg, g
}

// gatherConn waits before a read when the read before it filled less
// than half of its buffer (more data is on its way; a full buffer means
// some may be waiting already), until wait has passed since that read
// returned. Time pglink spent on what it read counts: a stream that was
// held up by the apply since its last read finds its data waiting and
// reads it at once.
type gatherConn struct {
	net.Conn
	wait    time.Duration
	on      *atomic.Bool
	shortAt time.Time // when the last read returned, if it was short; zero otherwise
}

func (c *gatherConn) Read(p []byte) (int, error) {
	if !c.shortAt.IsZero() {
		if d := c.wait - time.Since(c.shortAt); d > 0 {
			time.Sleep(d)
		}
	}
	n, err := c.Conn.Read(p)
	c.shortAt = time.Time{}
	if n < len(p)/2 && c.on.Load() {
		c.shortAt = time.Now()
	}
	return n, err
}
