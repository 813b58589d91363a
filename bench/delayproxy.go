package main

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// delayProxy stands for a network between pglink and a server: it
// forwards TCP connections to a server, and every byte arrives delay after
// it was sent, in each direction, at full bandwidth (what was sent
// meanwhile follows without waiting for a reply). Loopback has next to no
// latency; a managed target is usually a round trip of a millisecond or
// more away, a target in another region tens of milliseconds.
type delayProxy struct {
	ln     net.Listener
	to     string
	delay  time.Duration
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startDelayProxy listens on a free loopback port and forwards to addr.
func startDelayProxy(addr string, delay time.Duration) (*delayProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("delay proxy: %w", err)
	}
	p := &delayProxy{ln: ln, to: addr, delay: delay, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// port is where clients connect.
func (p *delayProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *delayProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, s) {
			return
		}
		p.wg.Add(2)
		go p.pipe(s, c)
		go p.pipe(c, s)
	}
}

func (p *delayProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

// chunk is what one read returned, and when.
type chunk struct {
	data []byte
	at   time.Time
}

// pipe copies from src to dst, each chunk written delay after it was read.
func (p *delayProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	chunks := make(chan chunk, 4096)
	go func() {
		defer close(chunks)
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{data: append([]byte(nil), buf[:n]...), at: time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		time.Sleep(time.Until(c.at.Add(p.delay)))
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	// The source side ended (or dst failed): end both, and drain what the
	// reader still hands over so it can finish.
	dst.Close()
	src.Close()
	for range chunks {
	}
}

// close stops listening and ends every forwarded connection.
func (p *delayProxy) close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
