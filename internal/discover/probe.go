package discover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Status says what answered at a host and port.
type Status string

const (
	StatusPostgres   Status = "postgresql"     // answered an SSLRequest as PostgreSQL does
	StatusOther      Status = "not_postgresql" // accepts connections, but is not PostgreSQL
	StatusClosed     Status = "closed"         // the host refused the connection: nothing listens there
	StatusNoAnswer   Status = "unreachable"    // no answer in time, or no route to the host
	StatusUnresolved Status = "unresolved"     // the host name does not resolve
)

// sslRequest is the SSLRequest packet: length 8, then the code 80877103
// (PostgreSQL's frontend/backend protocol, "SSL Session Encryption").
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// quietWindow is how long a PostgreSQL server stays silent after its one
// byte answer: it waits for the client. A service that sends a banner on
// connect (SSH sends "SSH-2.0-...", which starts with 'S' too) sends more.
const quietWindow = 150 * time.Millisecond

// probe tells what listens at host:port. A PostgreSQL server answers an
// SSLRequest with exactly one byte, 'S' (it would start TLS) or 'N' (it
// would go on in plain text), and then waits; pglink closes the
// connection then, which the server takes silently.
func probe(ctx context.Context, host string, port int, timeout time.Duration) (st Status, detail string, ssl bool) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		st, detail = dialStatus(err, timeout)
		return st, detail, false
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return StatusOther, "cannot set a deadline: " + err.Error(), false
	}
	if _, err := conn.Write(sslRequest); err != nil {
		return StatusOther, "accepts connections, but the SSLRequest could not be sent: " + err.Error(), false
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	switch {
	case n == 0 && isTimeout(err):
		return StatusOther, fmt.Sprintf("accepts connections, but gave no answer to an SSLRequest within %s", timeout), false
	case n == 0:
		return StatusOther, "accepts connections, but closed the connection on an SSLRequest", false
	case n > 1 || (buf[0] != 'S' && buf[0] != 'N'):
		return StatusOther, fmt.Sprintf("answered %q to an SSLRequest", printable(buf[:n])), false
	}
	// One byte, 'S' or 'N': PostgreSQL, unless more follows at once.
	conn.SetReadDeadline(time.Now().Add(min(quietWindow, timeout)))
	if m, _ := conn.Read(buf[1:]); m > 0 {
		return StatusOther, fmt.Sprintf("answered %q to an SSLRequest", printable(buf[:1+m])), false
	}
	if buf[0] == 'S' {
		return StatusPostgres, "PostgreSQL protocol, TLS offered", true
	}
	return StatusPostgres, "PostgreSQL protocol, no TLS", false
}

func dialStatus(err error, timeout time.Duration) (Status, string) {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return StatusUnresolved, "the name does not resolve: " + dnsErr.Err
	case errors.Is(err, syscall.ECONNREFUSED):
		return StatusClosed, "connection refused: nothing listens on this port"
	case isTimeout(err):
		return StatusNoAnswer, fmt.Sprintf("no answer within %s (host down, or a firewall drops the packets)", timeout)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return StatusNoAnswer, "no route to the host"
	}
	return StatusNoAnswer, err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) ||
		errors.Is(err, context.DeadlineExceeded)
}

// printable shows the first bytes of an answer, quoted, cut short.
func printable(b []byte) string {
	if len(b) > 24 {
		b = b[:24]
	}
	return string(b)
}
