package pgtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/instance"
)

// Proxy is a TCP proxy on a loopback port in front of a cluster, that
// injects the faults of a network: a black hole (bytes stop, both ways,
// and no socket is closed: a firewall that drops packets, a NAT entry
// that expired), resets, and latency. Tests point a connection string at
// it (URL) instead of at the cluster.
type Proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu      sync.Mutex
	changed *sync.Cond // broadcast when hole, a pipe's stuck or closed changes
	hole    bool       // every connection, open or new, is black-holed
	latency time.Duration
	pipes   map[*pipe]struct{}
	closed  bool
}

// pipe is one proxied connection.
type pipe struct {
	client, server *net.TCPConn
	stuck          bool // black-holed for good
	ended          int  // directions whose sender closed
}

// NewProxy starts a proxy to c; it stops when the test ends.
func NewProxy(t testing.TB, c *Cluster) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: proxy: %v", err)
	}
	p := &Proxy{t: t, ln: ln, target: fmt.Sprintf("127.0.0.1:%d", c.Port), pipes: map[*pipe]struct{}{}}
	p.changed = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Port is the proxy's port on 127.0.0.1.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// URL is the cluster's URL for database db, through the proxy.
func (p *Proxy) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", instance.Superuser, p.Port(), db)
}

// Blackhole stops every byte of every connection, open or new, until Lift.
// New connections are still accepted (the kernel does that) but nothing
// reaches the server.
func (p *Proxy) Blackhole() { p.set(func() { p.hole = true }) }

// Lift ends Blackhole: what was held goes through, as TCP sends again what
// a network dropped. Connections black-holed by BlackholeOpen stay so.
func (p *Proxy) Lift() { p.set(func() { p.hole = false }) }

// BlackholeOpen black-holes the connections open now, for good; new ones
// go through.
func (p *Proxy) BlackholeOpen() {
	p.set(func() {
		for c := range p.pipes {
			c.stuck = true
		}
	})
}

// Reset ends every open connection with a reset, on both ends.
func (p *Proxy) Reset() {
	p.set(func() {
		for c := range p.pipes {
			c.reset()
			delete(p.pipes, c)
		}
	})
}

// SetLatency delays every chunk of bytes by d, each way.
func (p *Proxy) SetLatency(d time.Duration) { p.set(func() { p.latency = d }) }

// Conns is the number of open connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pipes)
}

func (p *Proxy) set(f func()) {
	p.mu.Lock()
	f()
	p.mu.Unlock()
	p.changed.Broadcast()
}

func (p *Proxy) close() {
	p.ln.Close()
	p.set(func() {
		p.closed = true
		for c := range p.pipes {
			c.reset()
		}
		p.pipes = nil
	})
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		c := &pipe{client: client.(*net.TCPConn), server: server.(*net.TCPConn)}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.reset()
			return
		}
		p.pipes[c] = struct{}{}
		p.mu.Unlock()
		go p.forward(c, c.client, c.server)
		go p.forward(c, c.server, c.client)
	}
}

// forward copies from one end to the other, a chunk at a time, each
// chunk held while the connection is black-holed and delayed by the
// latency. An end that closes is passed on the same way.
func (p *Proxy) forward(c *pipe, from, to *net.TCPConn) {
	buf := make([]byte, 32<<10)
	for {
		n, rerr := from.Read(buf)
		delay, ok := p.pass(c)
		if !ok {
			return
		}
		time.Sleep(delay)
		if n > 0 {
			if _, err := to.Write(buf[:n]); err != nil {
				p.drop(c)
				return
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				to.CloseWrite()
				p.ended(c)
				return
			}
			p.drop(c)
			return
		}
	}
}

// pass waits while c is black-holed and returns the latency; false when
// c was reset or the proxy closed meanwhile.
func (p *Proxy) pass(c *pipe) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.closed && (p.hole || c.stuck) {
		if _, open := p.pipes[c]; !open {
			return 0, false
		}
		p.changed.Wait()
	}
	_, open := p.pipes[c]
	return p.latency, open && !p.closed
}

// drop closes both ends of c after an error on one of them.
func (p *Proxy) drop(c *pipe) {
	p.set(func() {
		if _, open := p.pipes[c]; open {
			c.reset()
			delete(p.pipes, c)
		}
	})
}

// ended notes that one direction of c closed; with both, c is gone.
func (p *Proxy) ended(c *pipe) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.ended++; c.ended == 2 {
		c.client.Close()
		c.server.Close()
		delete(p.pipes, c)
	}
}

// reset closes both ends with a reset (no lingering: the peer gets RST).
func (c *pipe) reset() {
	for _, conn := range []*net.TCPConn{c.client, c.server} {
		conn.SetLinger(0)
		conn.Close()
	}
}
