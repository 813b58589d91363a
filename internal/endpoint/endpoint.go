// Package endpoint turns the user's connection strings for the source and
// the target into connections, and connection failures into errors that
// name the side, the cause and the fix, without ever showing a password.
package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
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

// Explain turns a connection error into one paragraph: side, cause, fix.
func (e *Endpoint) Explain(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	where := e.Describe()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01":
			return &Error{e.Side, fmt.Sprintf("password authentication failed for user %q at %s", e.Config.User, where),
				"check the user and password (in the connection string, PGPASSWORD or the passfile ~/.pgpass)", err}
		case "28000":
			return &Error{e.Side, fmt.Sprintf("the server refuses user %q at %s: %s", e.Config.User, where, pgErr.Message),
				"allow this user and address in the server's pg_hba.conf and reload it, or check the user name", err}
		case "3D000":
			return &Error{e.Side, fmt.Sprintf("database %q does not exist at %s", e.Config.Database, where),
				"check the database name in the connection string", err}
		case "53300":
			return &Error{e.Side, fmt.Sprintf("too many connections at %s", where),
				"raise max_connections or close idle sessions", err}
		case "42501":
			return &Error{e.Side, fmt.Sprintf("permission denied at %s: %s", where, pgErr.Message),
				"grant the user the right named above", err}
		}
		return &Error{e.Side, fmt.Sprintf("%s at %s", pgErr.Message, where), "", err}
	}
	var netErr net.Error
	if errors.As(err, &netErr) || strings.Contains(err.Error(), "connect: connection refused") || strings.Contains(err.Error(), "dial") {
		return &Error{e.Side, fmt.Sprintf("cannot reach the server at %s:%d", e.Config.Host, e.Config.Port),
			"check host and port, that the server runs and listens there (listen_addresses), and that no firewall blocks it", err}
	}
	return &Error{e.Side, fmt.Sprintf("cannot connect to %s", where), "", err}
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
