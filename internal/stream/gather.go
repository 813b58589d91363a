package stream

import (
	"context"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// readGather is how long a read of the replication stream waits after a
// read that found little data, so that the next one finds more.
//
// A link that keeps up with the WAL sender would otherwise read each
// message as it arrives: one read system call, one wake-up of pglink and
// one of the Go scheduler per message, and the WAL sender waking pglink
// at each of its sends. With pgbench at scale 1 that was more than half
// of pglink's CPU, and the stream ran at the speed of those wake-ups.
// Waiting a millisecond lets the messages of that millisecond arrive
// together; it adds at most that much to the lag.
const readGather = time.Millisecond

// gathering makes cfg's connections wait readGather after a short read.
func gathering(cfg *pgconn.Config) *pgconn.Config {
	dial := cfg.DialFunc
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 5 * time.Minute}).DialContext
	}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &gatherConn{Conn: c, wait: readGather}, nil
	}
	return cfg
}

// gatherConn waits before a read when the read before it filled less
// than half of its buffer: more data is on its way, and a full buffer
// means some may be waiting already.
type gatherConn struct {
	net.Conn
	wait  time.Duration
	short bool
}

func (c *gatherConn) Read(p []byte) (int, error) {
	if c.short {
		time.Sleep(c.wait)
	}
	n, err := c.Conn.Read(p)
	c.short = n < len(p)/2
	return n, err
}
