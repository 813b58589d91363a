package seed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/pgdump"
	"github.com/pglink/pglink/internal/quote"
)

// SchemaOptions say what schema to copy from where.
type SchemaOptions struct {
	Source, Target string // connection strings; they may hold passwords, which no message shows
	// Tables, when not empty, are the only tables copied: every other table
	// of the source is left out, and so are the views that read them. All
	// other objects (schemas, types, functions, sequences, extensions) are
	// copied, so the tables find what they need.
	Tables        []catalog.Table
	ExcludeTables []catalog.Table // tables left out in any case
	// Snapshot, when set, makes pg_dump read the schema as of this exported
	// snapshot (pg_dump --snapshot); its exporting session must stay open.
	Snapshot string
	// Dumped, when set, is the section dumped ahead (DumpAhead): PostData
	// takes its statements from it instead of running pg_dump now.
	Dumped *SectionDump
	// Built are the post-data statements (by their SQL) built early
	// (EarlyBuilds), which PostData leaves out.
	Built  map[string]bool
	Logger *slog.Logger
}

func (o SchemaOptions) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// targetSection dumps a section of the source's schema and keeps what the
// target can take, with a session on the target to apply it.
func targetSection(ctx context.Context, o SchemaOptions, section string) ([]statement, Report, *pgx.Conn, error) {
	var stmts []statement
	var rep Report
	var err error
	if o.Dumped != nil && o.Dumped.section == section {
		stmts, rep, err = o.Dumped.result(ctx, o)
	} else {
		stmts, rep, err = dumpSection(ctx, o, section)
	}
	if err != nil {
		return nil, rep, nil, err
	}
	conn, err := connectTarget(ctx, o.Target)
	if err != nil {
		return nil, rep, nil, err
	}
	if stmts, err = filterForTarget(ctx, conn, stmts, &rep); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, rep, nil, err
	}
	return stmts, rep, conn, nil
}

// PreData creates the schema's pre-data objects (schemas, types, functions,
// tables, sequences, views) on the target, in one transaction: on failure
// nothing of it remains. Owners and grants naming roles missing on the
// target are left out and reported.
func PreData(ctx context.Context, o SchemaOptions) (Report, error) {
	stmts, rep, conn, err := targetSection(ctx, o, "pre-data")
	if err != nil {
		return rep, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadWrite})
	if err != nil {
		return rep, fmt.Errorf("target: begin schema copy: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, s := range stmts {
		if err := execStatement(ctx, conn.PgConn(), s); err != nil {
			return rep, fmt.Errorf("target: create %s: %w%s", s.label(), err, lockHint(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return rep, fmt.Errorf("target: commit schema copy: %w", err)
	}
	o.logger().Info("schema pre-data copied", "statements", len(stmts), "skipped", len(rep.Skipped))
	return rep, nil
}

// lockHint explains "out of shared memory" in the one-transaction schema
// copy: every table created holds a lock until commit, and the lock table
// has room for max_locks_per_transaction * max_connections locks.
func lockHint(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "53200" {
		return "; the schema is created in one transaction, which locks every table it makes: " +
			"raise max_locks_per_transaction on the target (and restart it), then try again"
	}
	return ""
}

var createSchemaRE = regexp.MustCompile(`(?i)^CREATE SCHEMA ("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)$`)

// filterForTarget drops what the target cannot take (owners and grants of
// missing roles), and lets schemas that already exist on the target (made
// by hand, or by the user's template database) be reused.
func filterForTarget(ctx context.Context, conn *pgx.Conn, stmts []statement, rep *Report) ([]statement, error) {
	roles, member, err := targetRoles(ctx, conn)
	if err != nil {
		return nil, err
	}
	stmts = dropForeignOwners(dropMissingRoles(stmts, roles, rep), member, rep)
	for i := range stmts {
		if m := createSchemaRE.FindStringSubmatch(stmts[i].SQL); m != nil {
			stmts[i].SQL = "CREATE SCHEMA IF NOT EXISTS " + m[1]
		}
	}
	return stmts, nil
}

// targetRoles lists the target's roles, and those the user may act as
// (make an object's owner): on PostgreSQL 16+ with the SET option of its
// membership, before as a member.
func targetRoles(ctx context.Context, conn *pgx.Conn) (roles, member map[string]bool, err error) {
	rows, err := conn.Query(ctx, `SELECT rolname, CASE WHEN current_setting('server_version_num')::int >= 160000
		THEN pg_has_role(oid, 'SET') ELSE pg_has_role(oid, 'MEMBER') END FROM pg_roles`)
	if err != nil {
		return nil, nil, fmt.Errorf("target: list roles: %w", err)
	}
	roles, member = map[string]bool{}, map[string]bool{}
	var name string
	var can bool
	_, err = pgx.ForEachRow(rows, []any{&name, &can}, func() error {
		roles[name], member[name] = true, can
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("target: list roles: %w", err)
	}
	return roles, member, nil
}

// execStatement runs one statement with the simple query protocol, as psql
// would: DDL takes no parameters, and some of it cannot be prepared.
func execStatement(ctx context.Context, conn *pgconn.PgConn, s statement) error {
	_, err := conn.Exec(ctx, s.SQL).ReadAll()
	return err
}

// connectTarget opens a target session that may write although the link
// makes the target database read-only for everyone else (startup options
// outrank ALTER DATABASE settings), and that fires no triggers. Its commits
// do not wait for the WAL flush (synchronous_commit off, as pgcopydb's):
// seeding work counts as done only once the caller records it with a
// commit of its own that does wait, and that flush takes every earlier
// commit of the server along. What a server crash loses before then is
// redone, as after a killed process: a table not recorded as copied is
// emptied and copied again, post-data skips what exists.
func connectTarget(ctx context.Context, connString string) (*pgx.Conn, error) {
	cfg, err := parseConn(endpoint.Target, connString)
	if err != nil {
		return nil, err
	}
	return connectTargetConfig(ctx, cfg)
}

func connectTargetConfig(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	cfg = cfg.Copy()
	cfg.RuntimeParams["default_transaction_read_only"] = "off"
	cfg.RuntimeParams["session_replication_role"] = "replica"
	cfg.RuntimeParams["synchronous_commit"] = "off"
	// The target database may have the source's settings already (a link
	// seeded again into it): its timeouts are not for index builds.
	cfg.RuntimeParams["statement_timeout"] = "0"
	cfg.RuntimeParams["lock_timeout"] = "0"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("target %s@%s:%d/%s: connect: %w", cfg.User, cfg.Host, cfg.Port, cfg.Database, err)
	}
	return conn, nil
}

// dumpSection runs pg_dump --schema-only for one section and splits its
// script into statements.
func dumpSection(ctx context.Context, o SchemaOptions, section string) ([]statement, Report, error) {
	var rep Report
	cfg, err := parseConn(endpoint.Source, o.Source)
	if err != nil {
		return nil, rep, err
	}
	src, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, rep, fmt.Errorf("%s: connect: %w", describeConn("source", o.Source), err)
	}
	defer src.Close(context.WithoutCancel(ctx))
	version, err := catalog.ServerVersion(ctx, src)
	if err != nil {
		return nil, rep, fmt.Errorf("source: %w", err)
	}
	excluded, err := exclusions(ctx, src, o, &rep)
	if err != nil {
		return nil, rep, err
	}
	pgDump, err := pgdump.Find(ctx, version)
	if err != nil {
		return nil, rep, err
	}
	args := []string{"--schema-only", "--section=" + section, "--no-publications", "--no-subscriptions",
		"--no-tablespaces", "--no-security-labels", "--exclude-schema=" + catalog.OwnSchema}
	if o.Snapshot != "" {
		args = append(args, "--snapshot="+o.Snapshot)
	}
	for _, name := range excluded {
		args = append(args, "--exclude-table="+name)
	}
	script, err := runPgDump(ctx, pgDump, o.Source, args)
	if err != nil {
		return nil, rep, err
	}
	return withoutOwnObjects(splitScript(string(script))), rep, nil
}

// withoutOwnObjects leaves out pglink's triggers on the source: the event
// triggers of its DDL capture and the partitions' truncate triggers
// (named "<table> pglink_truncate_<link>" in pg_dump's headers, with the
// ALTER TABLE that enables them ALWAYS), whose functions are in the
// schema pg_dump leaves out.
func withoutOwnObjects(stmts []statement) []statement {
	out := stmts[:0]
	for _, s := range stmts {
		if s.Type == "EVENT TRIGGER" && strings.HasPrefix(s.Name, "pglink_") {
			continue
		}
		if f := strings.Fields(s.Name); s.Type == "TRIGGER" && len(f) > 0 && strings.HasPrefix(f[len(f)-1], "pglink_truncate_") {
			continue
		}
		out = append(out, s)
	}
	return out
}

// exclusions returns pg_dump patterns (quoted, so taken literally) for the
// tables not copied, their partitions (pg_dump before 16 has no
// --exclude-table-and-children), and the views and materialized views that
// read them, which could not be created without them.
func exclusions(ctx context.Context, conn *pgx.Conn, o SchemaOptions, rep *Report) ([]string, error) {
	excluded := append([]catalog.Table(nil), o.ExcludeTables...)
	if len(o.Tables) > 0 {
		all, err := catalog.Tables(ctx, conn, catalog.Filter{})
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		selected := map[string]bool{}
		for _, t := range o.Tables {
			selected[t.Key()] = true
		}
		for _, t := range all {
			if !selected[t.Key()] {
				excluded = append(excluded, t)
			}
		}
	}
	var names []string
	var oids []uint32
	for _, t := range excluded {
		names = append(names, t.QualifiedName())
		for _, p := range t.Partitions {
			names = append(names, p.QualifiedName())
		}
		oids = append(oids, t.OID)
	}
	views, err := dependentViews(ctx, conn, oids)
	if err != nil {
		return nil, err
	}
	for _, v := range views {
		names = append(names, v)
		rep.skip("view " + v + ": it reads a table that is not copied")
	}
	return names, nil
}

// dependentViews follows pg_depend from tables to the rewrite rules of the
// views that read them, and on to views of those views.
func dependentViews(ctx context.Context, conn *pgx.Conn, oids []uint32) ([]string, error) {
	if len(oids) == 0 {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `
		WITH RECURSIVE dep(oid) AS (
			SELECT unnest($1::oid[])
			UNION
			SELECT r.ev_class FROM dep
			JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = dep.oid
			                 AND d.classid = 'pg_rewrite'::regclass
			JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> dep.oid)
		SELECT n.nspname, c.relname FROM dep
		JOIN pg_class c ON c.oid = dep.oid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('v', 'm') ORDER BY 1, 2`, oids)
	if err != nil {
		return nil, fmt.Errorf("source: find views of tables not copied: %w", err)
	}
	var out []string
	var schema, name string
	_, err = pgx.ForEachRow(rows, []any{&schema, &name}, func() error {
		out = append(out, quote.Ident(schema)+"."+quote.Ident(name))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("source: find views of tables not copied: %w", err)
	}
	return out, nil
}

// shortSQL is the start of a statement for messages; DDL may hold secrets
// only in USER MAPPING and SERVER options, which are never shown.
func shortSQL(s statement) string {
	if strings.Contains(strings.ToUpper(s.Type), "USER MAPPING") || strings.Contains(strings.ToUpper(s.Type), "SERVER") {
		return s.label()
	}
	return quote.FirstLine(s.SQL, 200)
}
