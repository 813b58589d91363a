package pgtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/instance"
)

func TestStartTwoClusters(t *testing.T) {
	a := Start(t, Options{})
	b := Start(t, Options{})
	if a.Port == b.Port {
		t.Fatalf("two clusters share port %d", a.Port)
	}
	if got, want := a.QueryString("postgres", "current_setting('wal_level')"), "logical"; got != want {
		t.Fatalf("wal_level = %q, want %q", got, want)
	}
	b.CreateDB("shop")
	b.Exec("shop", "CREATE TABLE t (id int primary key)", "INSERT INTO t VALUES (1), (2)")
	if got, want := b.QueryString("shop", "SELECT count(*) FROM t"), "2"; got != want {
		t.Fatalf("count = %s, want %s", got, want)
	}
}

// TestProxyFaults runs each fault of the proxy over an echo server.
func TestProxyFaults(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go io.Copy(c, c)
		}
	}()
	p := NewProxy(t, &Cluster{Instance: &instance.Instance{Port: echo.Addr().(*net.TCPAddr).Port}, t: t})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// roundTrip reports whether a message comes back within wait.
	roundTrip := func(c net.Conn, wait time.Duration) error {
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(wait))
		b := make([]byte, 4)
		_, err := io.ReadFull(c, b)
		return err
	}
	a := dial()
	if err := roundTrip(a, 5*time.Second); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Blackhole()
	if err := roundTrip(a, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("in a black hole: %v, want a timeout", err)
	}
	p.Lift()
	if err := roundTrip(a, 5*time.Second); err != nil { // the held ping
		t.Fatalf("after the black hole lifted: %v", err)
	}
	if _, err := io.ReadFull(a, make([]byte, 4)); err != nil { // and this one
		t.Fatalf("after the black hole lifted: %v", err)
	}
	p.BlackholeOpen()
	if err := roundTrip(a, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("open connection in a black hole: %v, want a timeout", err)
	}
	b := dial()
	if err := roundTrip(b, 5*time.Second); err != nil {
		t.Fatalf("new connection after BlackholeOpen: %v", err)
	}
	p.SetLatency(200 * time.Millisecond)
	start := time.Now()
	if err := roundTrip(b, 5*time.Second); err != nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("with latency: %v after %s, want an answer after 400ms", err, time.Since(start))
	}
	p.SetLatency(0)
	p.Reset()
	if err := roundTrip(b, 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after a reset: %v, want the connection gone", err)
	}
}

// TestStartVersion starts servers of other major versions from the cache
// that make versions fills, and refuses one that is not there with the fix.
func TestStartVersion(t *testing.T) {
	for _, v := range []int{13, 18} {
		c := Start(t, Options{Version: v})
		if got, want := c.QueryString("postgres", "current_setting('server_version_num')::int / 10000"), fmt.Sprint(v); got != want {
			t.Errorf("Options{Version: %d} started a PostgreSQL %s server", v, got)
		}
		if got := c.QueryString("postgres", "current_setting('wal_level')"); got != "logical" {
			t.Errorf("PostgreSQL %d: wal_level = %s", v, got)
		}
	}
	t.Setenv("PGLINK_PG_CACHE", t.TempDir())
	if _, err := BinDir(17); err == nil || !strings.Contains(err.Error(), "run make versions") {
		t.Errorf("a version not fetched: %v, want an error that says to run make versions", err)
	}
}
