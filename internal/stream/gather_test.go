package stream

import (
	"io"
	"net"
	"testing"
	"time"
)

func TestGatherConnWaitsAfterShortReads(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	const wait = 50 * time.Millisecond
	c := &gatherConn{Conn: client, wait: wait}
	go func() {
		_, _ = server.Write([]byte("abc"))   // a short read
		_, _ = server.Write(make([]byte, 8)) // read at once: comes after a wait
		_, _ = server.Write(make([]byte, 8)) // a full read: the next one does not wait
		_, _ = server.Write([]byte("z"))
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
	if n, _ := read(); n != 3 {
		t.Fatalf("first read: %d bytes, want 3", n)
	}
	if n, d := read(); n != 8 || d < wait {
		t.Fatalf("read after a short one: %d bytes after %v, want 8 after at least %v", n, d, wait)
	}
	if n, _ := read(); n != 8 {
		t.Fatalf("third read: %d bytes, want 8", n)
	}
	if n, d := read(); n != 1 || d >= wait {
		t.Fatalf("read after a full one: %d bytes after %v, want 1 without waiting %v", n, d, wait)
	}
}
