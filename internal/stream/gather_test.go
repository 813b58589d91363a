package stream

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestGatherConnWaitsAfterShortReads(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	const wait = 50 * time.Millisecond
	var on atomic.Bool
	c := &gatherConn{Conn: client, wait: wait, on: &on}
	go func() {
		_, _ = server.Write([]byte("hi"))    // a short read before the switch: the next one does not wait
		_, _ = server.Write([]byte("abc"))   // a short read
		_, _ = server.Write(make([]byte, 8)) // read at once: comes after a wait
		_, _ = server.Write(make([]byte, 8)) // a full read: the next one does not wait
		_, _ = server.Write([]byte("z"))     // a short read, then a pause as long as the wait
		_, _ = server.Write([]byte("y"))     // read after the pause: no more wait
	}()
	buf := make([]byte, 8)
	read := func() (int, time.Duration) {
		start := time.Now()
		n, err := io.ReadAtLeast(c, buf, 1)
		if err != nil {
			t.Fatal(err)
		}
		return n, time.Since(start)
	}
	if n, _ := read(); n != 2 {
		t.Fatalf("first read: %d bytes, want 2", n)
	}
	on.Store(true)
	if n, d := read(); n != 3 || d >= wait {
		t.Fatalf("read after a short one before the switch: %d bytes after %v, want 3 without waiting %v", n, d, wait)
	}
	if n, d := read(); n != 8 || d < wait*9/10 {
		t.Fatalf("read after a short one: %d bytes after %v, want 8 after about %v", n, d, wait)
	}
	if n, _ := read(); n != 8 {
		t.Fatalf("fourth read: %d bytes, want 8", n)
	}
	if n, d := read(); n != 1 || d >= wait {
		t.Fatalf("read after a full one: %d bytes after %v, want 1 without waiting %v", n, d, wait)
	}
	time.Sleep(wait)
	if n, d := read(); n != 1 || d >= wait/2 {
		t.Fatalf("read a wait after a short one: %d bytes after %v, want 1 at once", n, d)
	}
}
