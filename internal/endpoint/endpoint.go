// Package endpoint turns the user's connection strings for the source and
// the target into connections, and connection failures into errors that
// name the side, the cause and the fix, without ever showing a password.
package endpoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Side names which database a connection goes to, for messages.
type Side string

const (
	Source Side = "source"
	Target Side = "target"
)

// ApplicationName is the application_name of pglink's sessions, unless the
// connection string sets one.
const ApplicationName = "pglink"

// Endpoint is one side's parsed connection settings.
type Endpoint struct {
	Side   Side
	Config *pgx.ConnConfig
	raw    string // the user's string, for tools that take one
}

// Parse reads a libpq URL or key=value string. Passwords may come from the
// string, PGPASSWORD or the passfile, as libpq does.
func Parse(side Side, connString string) (*Endpoint, error) {
	if strings.TrimSpace(connString) == "" {
		env := "PGLINK_" + strings.ToUpper(string(side))
		return nil, fmt.Errorf("%s: no connection string: give --%s or set %s (a libpq URL like postgres://user@host:5432/db or key=value pairs)", side, side, env)
	}
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("%s: the connection string cannot be read: %s; give a libpq URL (postgres://user@host:5432/db) or key=value pairs (host=... dbname=...)", side, redactParseError(err))
	}
	cfg.ConnectTimeout = connectTimeout(cfg.ConnectTimeout)
	tcp, err := takeTCPSettings(cfg.RuntimeParams)
	if err != nil {
		return nil, fmt.Errorf("%s: the connection string cannot be read: %w", side, err)
	}
	// Every connection made from the config (and its copies: the
	// replication one, pg_dump's excepted) finds a silent peer.
	cfg.DialFunc = tcp.dialer().DialContext
	if cfg.RuntimeParams["application_name"] == "" {
		// Names pglink's sessions in pg_stat_activity; a failover that ends
		// the source's sessions spares them by this name.
		cfg.RuntimeParams["application_name"] = ApplicationName
	}
	return &Endpoint{Side: side, Config: cfg, raw: connString}, nil
}

func connectTimeout(d time.Duration) time.Duration {
	if d == 0 {
		return 10 * time.Second
	}
	return d
}

// redactParseError keeps pgx's reason and drops the echoed string, which may
// hold a password.
func redactParseError(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) && pe.Unwrap() != nil {
		return pe.Unwrap().Error()
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return "invalid syntax"
}

// Describe says where the endpoint points, without secrets: user@host:port/db.
func (e *Endpoint) Describe() string {
	return fmt.Sprintf("%s@%s:%d/%s", e.Config.User, e.Config.Host, e.Config.Port, e.Config.Database)
}

// Database is the database name the endpoint names.
func (e *Endpoint) Database() string { return e.Config.Database }

// WithDatabase returns a copy that points at another database of the same server.
func (e *Endpoint) WithDatabase(db string) *Endpoint {
	cfg := e.Config.Copy()
	cfg.Database = db
	return &Endpoint{Side: e.Side, Config: cfg} // no raw string: it names the other database
}

// WithRuntimeParams returns a copy whose sessions start with these settings.
func (e *Endpoint) WithRuntimeParams(params map[string]string) *Endpoint {
	cfg := e.Config.Copy()
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	return &Endpoint{Side: e.Side, Config: cfg, raw: e.raw}
}

// ConnString returns the connection string the user gave, for tools that
// take one (pg_dump). It may hold the password: pass it on only in ways that
// never show it (the environment), and never into a message.
func (e *Endpoint) ConnString() string { return e.raw }

// Connect opens a connection and explains a failure.
func (e *Endpoint) Connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, e.Config.Copy())
	if err != nil {
		return nil, e.Explain(err)
	}
	return conn, nil
}

// ConnectPg opens a low-level connection (for replication) from cfg, which
// must derive from this endpoint, and explains a failure.
func (e *Endpoint) ConnectPg(ctx context.Context, cfg *pgconn.Config) (*pgconn.PgConn, error) {
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, e.Explain(err)
	}
	return conn, nil
}

// Explain turns a connection error into one paragraph: side, what went
// wrong and where, the driver's own words for it, and the fix. The
// password never shows, even where the driver echoes what it was given.
func (e *Endpoint) Explain(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	what, fix := e.diagnose(err)
	return &Error{e.Side, what + "; the driver said: " + e.driverCause(err), fix, err}
}

// diagnose says what a connection error means and how to fix it.
func (e *Endpoint) diagnose(err error) (what, fix string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return e.serverRefusal(pgErr)
	}
	server := fmt.Sprintf("%s:%d", e.Config.Host, e.Config.Port)
	var dnsErr *net.DNSError
	var netErr net.Error
	msg := err.Error()
	switch {
	case strings.Contains(msg, "server refused TLS connection"):
		return fmt.Sprintf("the server at %s does not accept TLS connections, and the connection string's sslmode requires TLS", server),
			"use sslmode=prefer (TLS only when the server offers it) or sslmode=disable in the connection string, " +
				"or turn TLS on in the server's postgresql.conf (ssl = on, with ssl_cert_file and ssl_key_file) and reload it"
	case isCertificateError(err):
		return fmt.Sprintf("the TLS certificate of the server at %s cannot be verified", server),
			"give the certificate of the authority that signed the server's certificate with sslrootcert=FILE, connect with a host name " +
				"the certificate names (sslmode=verify-full checks it), or use sslmode=require to encrypt without verifying the server"
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot reach the server at %s: the host name %q cannot be resolved", server, e.Config.Host),
			"check the host name in the connection string (a typo, or a name only another network knows), or give the server's IP address"
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(msg, "connection refused"):
		return fmt.Sprintf("cannot reach the server at %s: nothing listens there (connection refused)", server),
			"check the port, that the server runs, and that it listens on this address (listen_addresses in postgresql.conf)"
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("cannot reach the server at %s: no answer within the connect timeout (%s)", server, e.Config.ConnectTimeout),
			"check host and port, that the server runs, and that no firewall drops the packets; on a slow network raise connect_timeout in the connection string"
	case errors.As(err, &netErr) || strings.Contains(msg, "dial"):
		return fmt.Sprintf("cannot reach the server at %s", server),
			"check host and port, that the server runs and listens there (listen_addresses), and that no firewall blocks it"
	}
	return fmt.Sprintf("cannot connect to %s", e.Describe()),
		"check the connection string, and that the server runs and accepts this client (its log says why it refused)"
}

// serverRefusal explains an error the server answered the login with.
func (e *Endpoint) serverRefusal(pgErr *pgconn.PgError) (what, fix string) {
	where := e.Describe()
	switch {
	case pgErr.Code == "28P01":
		return fmt.Sprintf("password authentication failed for user %q at %s", e.Config.User, where),
			"check the user and password (in the connection string, PGPASSWORD or the passfile ~/.pgpass)"
	case pgErr.Code == "28000" && strings.Contains(pgErr.Message, "pg_hba.conf"):
		return fmt.Sprintf("the server's pg_hba.conf refuses user %q, database %q from this address at %s", e.Config.User, e.Config.Database, where),
			"add a line for this user, database and client address to the server's pg_hba.conf (a hostssl line needs sslmode=require) " +
				"and reload it (SELECT pg_reload_conf()), or connect as a user it allows"
	case pgErr.Code == "28000" && strings.Contains(pgErr.Message, "does not exist"):
		return fmt.Sprintf("user %q does not exist at %s", e.Config.User, where),
			"check the user name in the connection string, or create the role on the server (CREATE ROLE ... LOGIN PASSWORD '...')"
	case pgErr.Code == "28000":
		return fmt.Sprintf("the server refuses user %q at %s", e.Config.User, where),
			"allow this user and address in the server's pg_hba.conf and reload it, or check the user name"
	case pgErr.Code == "3D000":
		return fmt.Sprintf("database %q does not exist at %s", e.Config.Database, where),
			"check the database name in the connection string, or create the database"
	case pgErr.Code == "53300":
		return fmt.Sprintf("too many connections at %s", where),
			"close idle sessions, or raise the server's max_connections (or the role's or database's CONNECTION LIMIT)"
	case pgErr.Code == "57P03":
		return fmt.Sprintf("the server at %s does not accept connections yet (starting, stopping or in recovery)", where),
			"wait until the server has started, then try again"
	case pgErr.Code == "42501":
		return fmt.Sprintf("permission denied at %s", where),
			fmt.Sprintf("grant the user the right the server names (for a database: GRANT CONNECT ON DATABASE %s TO %s)",
				pgx.Identifier{e.Config.Database}.Sanitize(), pgx.Identifier{e.Config.User}.Sanitize())
	}
	return fmt.Sprintf("the server at %s refused the connection", where),
		"see the server's message; check the connection string and the server's log"
}

// isCertificateError says whether err is a failed check of the server's
// TLS certificate.
func isCertificateError(err error) bool {
	var verify *tls.CertificateVerificationError
	var authority x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verify) || errors.As(err, &authority) || errors.As(err, &host) || errors.As(err, &invalid) ||
		strings.Contains(err.Error(), "x509: ")
}

// driverCause is the driver's message for err, on one line, without the
// user and database it prefixes (the message names them) and without the
// password.
func (e *Endpoint) driverCause(err error) string {
	msg := err.Error()
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		msg = ce.Unwrap().Error()
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if pw := e.Config.Password; pw != "" {
		msg = strings.ReplaceAll(msg, pw, "********")
	}
	return msg
}

// Error is a failure on one side, with the fix when one is known.
type Error struct {
	Side   Side
	Cause  string
	Remedy string
	Err    error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: %s", e.Side, e.Cause)
	if e.Remedy != "" {
		s += ". Fix: " + e.Remedy
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// IsConnectionLost reports whether err means the server went away or could
// not be reached, as opposed to a SQL error it answered with: the first is
// retried, the second needs a person.
func IsConnectionLost(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "broken pipe", "EOF", "conn closed", "unexpected EOF", "failed to connect", "closed"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// IsLocalHost tells whether a connection's host is this machine: a socket
// directory, localhost or a loopback address.
func IsLocalHost(host string) bool {
	if strings.HasPrefix(host, "/") || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
