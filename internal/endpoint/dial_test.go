package endpoint

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestTCPSettings connects with pglink's TCP defaults and with libpq's
// parameters in the string: the sockets must carry them, and the server
// must never see the parameters (it refuses settings it does not know).
func TestTCPSettings(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		params              string
		idle, intvl, cnt, u int // seconds, seconds, probes, milliseconds
	}{
		{"", 15, 5, 3, 30000},
		{"&keepalives_idle=7&keepalives_interval=2&keepalives_count=4&tcp_user_timeout=9000", 7, 2, 4, 9000},
	} {
		ep, err := Parse(Source, c.URL("postgres")+tc.params)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := ep.Connect(ctx)
		if err != nil {
			t.Fatalf("connect with %q: %v", tc.params, err)
		}
		raw, err := conn.PgConn().Conn().(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		raw.Control(func(fd uintptr) {
			for name, opt := range map[string][2]int{"keepalive": {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
				"idle": {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE}, "interval": {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
				"count": {unix.IPPROTO_TCP, unix.TCP_KEEPCNT}, "user_timeout": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT}} {
				v, err := unix.GetsockoptInt(int(fd), opt[0], opt[1])
				if err != nil {
					t.Errorf("getsockopt %s: %v", name, err)
				}
				got[name] = v
			}
		})
		conn.Close(ctx)
		want := map[string]int{"keepalive": 1, "idle": tc.idle, "interval": tc.intvl, "count": tc.cnt, "user_timeout": tc.u}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("with %q: socket %s = %d, want %d", tc.params, k, got[k], v)
			}
		}
	}
	if _, err := Parse(Source, c.URL("postgres")+"&keepalives_idle=soon"); err == nil {
		t.Errorf("Parse accepted keepalives_idle=soon")
	}
}
