package link

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
)

// Problem is a reason the link cannot start, with its fix. Several
// problems are reported together so the user fixes them in one round.
type Problem struct {
	Side   endpoint.Side
	What   string
	Remedy string
}

// ProblemsError lists what blocks a link.
type ProblemsError struct{ Problems []Problem }

func (e *ProblemsError) Error() string {
	var b strings.Builder
	b.WriteString("the link cannot start:")
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n- %s: %s", p.Side, p.What)
		if p.Remedy != "" {
			fmt.Fprintf(&b, "\n  Fix: %s", p.Remedy)
		}
	}
	return b.String()
}

// checkSource finds what on the source blocks logical replication of tables.
func checkSource(ctx context.Context, conn *pgx.Conn, tables []catalog.Table) ([]Problem, error) {
	var probs []Problem
	var walLevel string
	var superuser, replication bool
	err := conn.QueryRow(ctx, `SELECT current_setting('wal_level'), rolsuper, rolreplication
		FROM pg_roles WHERE rolname = current_user`).Scan(&walLevel, &superuser, &replication)
	if err != nil {
		return nil, fmt.Errorf("source: read settings: %w", err)
	}
	if walLevel != "logical" {
		probs = append(probs, Problem{endpoint.Source,
			fmt.Sprintf("wal_level is %q; logical replication needs \"logical\"", walLevel),
			"run ALTER SYSTEM SET wal_level = logical; on the source and restart its server"})
	}
	if !superuser && !replication {
		probs = append(probs, Problem{endpoint.Source, "the user has no REPLICATION right",
			"run ALTER ROLE <user> WITH REPLICATION; as a superuser on the source"})
	}
	if len(tables) == 0 {
		probs = append(probs, Problem{endpoint.Source, "no tables to link (the database is empty or the filters exclude everything)",
			"check --tables and --exclude-tables"})
	}
	probs = append(probs, tableProblems(tables)...)
	noSelect, err := tablesWithoutSelect(ctx, conn, tables)
	if err != nil {
		return nil, err
	}
	if len(noSelect) > 0 {
		probs = append(probs, Problem{endpoint.Source, "the user cannot read " + strings.Join(noSelect, ", "),
			"GRANT SELECT ON those tables TO <user>; or leave them out with --exclude-tables"})
	}
	return probs, nil
}

func tableProblems(tables []catalog.Table) []Problem {
	var probs []Problem
	if bad := catalog.NoIdentity(tables); len(bad) > 0 {
		names := make([]string, len(bad))
		var fixes []string
		for i, t := range bad {
			names[i] = t.Key()
			fixes = append(fixes, catalog.IdentityFix(t)...)
		}
		probs = append(probs, Problem{endpoint.Source,
			"tables without primary key and without replica identity cannot replicate UPDATE and DELETE: " + strings.Join(names, ", "),
			"add a primary key, or run on the source: " + strings.Join(fixes, " ") + " (or leave them out with --exclude-tables)"})
	}
	var unlogged []string
	for _, t := range tables {
		if t.Unlogged {
			unlogged = append(unlogged, t.Key())
		}
	}
	if len(unlogged) > 0 {
		probs = append(probs, Problem{endpoint.Source,
			"unlogged tables are not written to the WAL and cannot be replicated: " + strings.Join(unlogged, ", "),
			"ALTER TABLE ... SET LOGGED on the source, or leave them out with --exclude-tables"})
	}
	return probs
}

func tablesWithoutSelect(ctx context.Context, conn *pgx.Conn, tables []catalog.Table) ([]string, error) {
	var out []string
	for _, t := range tables {
		var ok bool
		err := conn.QueryRow(ctx, `SELECT has_table_privilege(format('%I.%I', $1::text, $2::text), 'SELECT')`,
			t.Schema, t.Name).Scan(&ok)
		if err != nil {
			return nil, fmt.Errorf("source: check SELECT right on %s: %w", t.Key(), err)
		}
		if !ok {
			out = append(out, t.Key())
		}
	}
	return out, nil
}

// publicationComment marks a publication as made by pglink for one link.
func publicationComment(link string) string { return "pglink link " + link }

// publicationOwner tells whether the publication exists and whether it is
// this link's.
func publicationOwner(ctx context.Context, conn *pgx.Conn, pub, link string) (exists, ours bool, err error) {
	var comment *string
	err = conn.QueryRow(ctx, `SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1`,
		pub).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("source: look for publication %s: %w", pub, err)
	}
	return true, comment != nil && *comment == publicationComment(link), nil
}

func createPublication(ctx context.Context, conn *pgx.Conn, pub, link string, tables []catalog.Table) error {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.QualifiedName()
	}
	// publish_via_partition_root: changes of partitions arrive as their
	// root, so the target may partition differently (PostgreSQL 13+).
	sql := fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE %s WITH (publish_via_partition_root = true);
		COMMENT ON PUBLICATION %[1]s IS '%[3]s'`,
		pgx.Identifier{pub}.Sanitize(), strings.Join(names, ", "), publicationComment(link))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("source: create publication %s: %w (the user must own the tables, or be superuser)", pub, err)
	}
	return nil
}

func dropPublication(ctx context.Context, conn *pgx.Conn, pub string) error {
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{pub}.Sanitize()); err != nil {
		return fmt.Errorf("source: drop publication %s: %w", pub, err)
	}
	return nil
}

// slotState describes a replication slot on the source.
type slotState struct {
	Exists, Active bool
	Database       string
	Plugin         string
}

func lookupSlot(ctx context.Context, conn *pgx.Conn, slot string) (slotState, error) {
	var s slotState
	var db, plugin *string
	err := conn.QueryRow(ctx, `SELECT active, database, plugin FROM pg_replication_slots WHERE slot_name = $1`,
		slot).Scan(&s.Active, &db, &plugin)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("source: look for replication slot %s: %w", slot, err)
	}
	s.Exists = true
	if db != nil {
		s.Database = *db
	}
	if plugin != nil {
		s.Plugin = *plugin
	}
	return s, nil
}

// dropSlot drops a slot, ending the session that holds it first.
func dropSlot(ctx context.Context, conn *pgx.Conn, slot string) error {
	_, err := conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
		WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
	if err != nil {
		return fmt.Errorf("source: end the session of slot %s: %w", slot, err)
	}
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if err == nil {
			return nil
		}
		if attempt >= 20 || !strings.Contains(err.Error(), "is active") {
			return fmt.Errorf("source: drop replication slot %s: %w", slot, err)
		}
		if err := sleep(ctx, backoffStep); err != nil {
			return err
		}
	}
}

// systemIdentity names the source cluster and database, so a link is never
// resumed against another server that happens to answer at the same address.
func systemIdentity(ctx context.Context, conn *pgx.Conn) (string, error) {
	var id string
	err := conn.QueryRow(ctx, `SELECT (SELECT datname FROM pg_database WHERE datname = current_database())
		|| ':' || (SELECT oid::text FROM pg_database WHERE datname = current_database())`).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("source: read database identity: %w", err)
	}
	return id, nil
}
