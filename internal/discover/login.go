package discover

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/catalog"
)

// loginConfig builds the connection settings for one database of a server
// found. Parsing a connection string (rather than filling a struct) lets
// pgx take the password from PGPASSWORD or the passfile, as libpq does.
func loginConfig(s *Server, opts Options, db string) (*pgx.ConnConfig, error) {
	conn := fmt.Sprintf("host=%s port=%d dbname=%s sslmode=prefer", kv(s.Host), s.Port, kv(db))
	if opts.User != "" {
		conn += " user=" + kv(opts.User)
	}
	cfg, err := pgx.ParseConfig(conn)
	if err != nil {
		return nil, fmt.Errorf("connection settings for %s:%d: %w", s.Host, s.Port, err)
	}
	cfg.ConnectTimeout = opts.LoginTimeout
	return cfg, nil
}

// kv quotes a value for a key=value connection string.
func kv(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// connect logs in to database db of the server.
func connect(ctx context.Context, s *Server, opts Options, db string) (*pgx.Conn, error) {
	cfg, err := loginConfig(s, opts, db)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, newLoginFailure(err, cfg)
	}
	return conn, nil
}

// loginFailure says why a login failed, in the server's words when it
// answered, without the password.
type loginFailure struct {
	msg  string
	code string // the server's SQLSTATE, when it answered
}

func (e *loginFailure) Error() string { return e.msg }

func newLoginFailure(err error, cfg *pgx.ConnConfig) *loginFailure {
	f := &loginFailure{msg: err.Error()}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		f.msg, f.code = pgErr.Message, pgErr.Code
		if f.code == "28P01" || f.code == "28000" {
			f.msg = "refused: " + f.msg
		}
	}
	if cfg.Password != "" {
		f.msg = strings.ReplaceAll(f.msg, cfg.Password, "****")
	}
	return f
}

// login reads the version and the databases of a server found. The
// maintenance database postgres is tried first, template1 when it is gone.
func login(ctx context.Context, s *Server, opts Options) {
	conn, err := connect(ctx, s, opts, "postgres")
	var lf *loginFailure
	if errors.As(err, &lf) && lf.code == "3D000" {
		conn, err = connect(ctx, s, opts, "template1")
	}
	if err != nil {
		s.Login = err.Error()
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	s.Login = "ok"
	s.Version = conn.PgConn().ParameterStatus("server_version")
	dbs, err := listDatabases(ctx, conn)
	if err != nil {
		s.Login = "ok, but the databases could not be listed: " + err.Error()
		return
	}
	for i := range dbs {
		if dbs[i].SizeBytes != nil {
			checkDatabase(ctx, s, opts, &dbs[i])
		} else {
			dbs[i].Error = "the user may not connect to it"
		}
	}
	s.Databases = dbs
}

func listDatabases(ctx context.Context, conn *pgx.Conn) ([]Database, error) {
	rows, err := conn.Query(ctx, `SELECT datname,
		CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END
		FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Database, error) {
		d := Database{Blockers: []string{}}
		return d, r.Scan(&d.Name, &d.SizeBytes)
	})
}

// checkDatabase counts the tables a link would carry and runs pglink
// assess's checks of the source on them.
func checkDatabase(ctx context.Context, s *Server, opts Options, d *Database) {
	conn, err := connect(ctx, s, opts, d.Name)
	if err != nil {
		d.Error = err.Error()
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tables, err := catalog.Tables(ctx, conn, catalog.Filter{})
	if err != nil {
		d.Error = "list tables: " + err.Error()
		return
	}
	d.Tables = len(tables)
	fs, err := assess.CheckSource(ctx, conn, tables)
	if err != nil {
		d.Error = err.Error()
		return
	}
	for _, f := range assess.Blockers(fs) {
		d.Blockers = append(d.Blockers, f.What)
	}
	d.Ready = len(d.Blockers) == 0
}
