package endpoint

import (
	"fmt"
	"time"
)

// SilentError is a connection that went silent: the server answered
// nothing for a while although it should have (a network that drops
// packets, a server that hangs). The connection is given up, and pglink
// connects again; IsConnectionLost is true for it.
type SilentError struct {
	Side  Side
	What  string        // what waited: "the replication stream", "the heartbeat"
	Since time.Time     // when the server was last heard
	For   time.Duration // how long pglink waited
}

func (e *SilentError) Error() string {
	return fmt.Sprintf("%s: %s heard nothing from the server for %s, since %s: the network to the %s or its server went silent (packets dropped, a firewall or NAT in between, a server that hangs); pglink reconnects by itself",
		e.Side, e.What, e.For.Round(100*time.Millisecond), e.Since.UTC().Format("2006-01-02 15:04:05 UTC"), e.Side)
}

// Timeout and Temporary make it a net.Error: a lost connection.
func (e *SilentError) Timeout() bool   { return true }
func (e *SilentError) Temporary() bool { return true }
