package endpoint

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// TCP settings of every connection, unless the connection string gives
// libpq's keepalives, keepalives_idle, keepalives_interval,
// keepalives_count or tcp_user_timeout. A peer that vanishes without a
// reset (a firewall that drops packets, a NAT entry that expired, a
// server that lost power) is otherwise noticed only when the kernel gives
// up retransmitting, after 15 minutes or more, or never on an idle
// connection. With these, a connection waiting for an answer is given up
// after about 30 s of silence: keepalive probes find an idle one dead
// (15 s + 3 × 5 s), and the user timeout ends one whose sent data stays
// unacknowledged for 30 s.
const (
	DefaultKeepaliveIdle     = 15 * time.Second
	DefaultKeepaliveInterval = 5 * time.Second
	DefaultKeepaliveCount    = 3
	DefaultTCPUserTimeout    = 30 * time.Second
)

// tcpSettings are the TCP options of a connection.
type tcpSettings struct {
	keepalive   net.KeepAliveConfig
	userTimeout time.Duration // 0: the system's default
}

// tcpParams are libpq's TCP parameters. pgx does not know them and would
// send them to the server as settings, which it refuses.
var tcpParams = []string{"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout"}

// takeTCPSettings removes libpq's TCP parameters from params and returns
// the settings they give, over pglink's defaults. Like libpq's, the times
// are in seconds, tcp_user_timeout in milliseconds, and 0 keeps the
// system's default.
func takeTCPSettings(params map[string]string) (tcpSettings, error) {
	s := tcpSettings{
		keepalive: net.KeepAliveConfig{Enable: true, Idle: DefaultKeepaliveIdle,
			Interval: DefaultKeepaliveInterval, Count: DefaultKeepaliveCount},
		userTimeout: DefaultTCPUserTimeout,
	}
	for _, k := range tcpParams {
		v, ok := params[k]
		if !ok {
			continue
		}
		delete(params, k)
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return s, fmt.Errorf("invalid %s %q: give a whole number, 0 or more", k, v)
		}
		switch k {
		case "keepalives":
			s.keepalive.Enable = n != 0
		case "keepalives_idle":
			s.keepalive.Idle = orSystem(time.Duration(n) * time.Second)
		case "keepalives_interval":
			s.keepalive.Interval = orSystem(time.Duration(n) * time.Second)
		case "keepalives_count":
			s.keepalive.Count = n
			if n == 0 {
				s.keepalive.Count = -1
			}
		case "tcp_user_timeout":
			s.userTimeout = time.Duration(n) * time.Millisecond
		}
	}
	return s, nil
}

// orSystem maps libpq's 0 (the system's default) to net's -1 (leave the
// option alone).
func orSystem(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// dialer opens TCP connections with s; Unix sockets are left as they are.
func (s tcpSettings) dialer() *net.Dialer {
	d := &net.Dialer{KeepAliveConfig: s.keepalive}
	if !s.keepalive.Enable {
		d.KeepAlive = -1
	}
	if s.userTimeout > 0 {
		d.Control = userTimeoutControl(s.userTimeout)
	}
	return d
}
