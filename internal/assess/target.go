package assess

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/quote"
)

// Schema modes of a link, as pglink start's --schema names them.
const (
	SchemaCopy     = "copy"     // pg_dump copies the schema: the target must not hold the tables
	SchemaExisting = "existing" // the target holds the tables already
)

// CheckTarget runs the checks that need only the target database: the
// user's rights and the tables the schema mode expects there or not.
func CheckTarget(ctx context.Context, conn *pgx.Conn, tables []catalog.Table, schemaMode string, truncateExisting bool) ([]Finding, error) {
	fs, err := TargetRights(ctx, conn, true)
	if err != nil {
		return nil, err
	}
	existing, err := ExistingTables(ctx, conn, tables)
	if err != nil {
		return nil, err
	}
	fs = append(fs, tableModeFindings(tables, existing, schemaMode)...)
	if schemaMode != SchemaExisting {
		return fs, nil
	}
	rows, err := tablesWithRows(ctx, conn, tables, existing)
	if err != nil {
		return nil, err
	}
	return append(fs, emptiedFindings(existing, rows, truncateExisting)...), nil
}

// tablesWithRows lists the tables of existing (keys of tables) that hold
// rows on the target.
func tablesWithRows(ctx context.Context, conn *pgx.Conn, tables []catalog.Table, existing []string) ([]string, error) {
	have := map[string]bool{}
	for _, k := range existing {
		have[k] = true
	}
	var out []string
	for _, t := range tables {
		if !have[t.Key()] {
			continue
		}
		var any bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+t.QualifiedName()+`)`).Scan(&any); err != nil {
			return nil, fmt.Errorf("target: look for rows in table %s: %w", t.Key(), err)
		}
		if any {
			out = append(out, t.Key())
		}
	}
	return out, nil
}

// emptiedFindings says that --schema existing empties the target's tables
// before it copies into them, and blocks when that would delete rows the
// user did not agree to lose.
func emptiedFindings(existing, withRows []string, truncate bool) []Finding {
	switch {
	case len(withRows) > 0 && !truncate:
		return []Finding{finding(Blocker, endpoint.Target, "tables_hold_rows",
			"with --schema existing pglink empties each target table before it copies the source's rows into it, and these hold rows: "+list(withRows),
			"check that the target is the database you mean; empty the tables yourself, or pass --truncate-existing to let pglink empty them")}
	case len(withRows) > 0:
		return []Finding{finding(Warning, endpoint.Target, "tables_emptied",
			"pglink empties these target tables (--truncate-existing), deleting the rows they hold, before it copies the source's rows into them: "+list(withRows), "")}
	case len(existing) > 0:
		return []Finding{finding(Info, endpoint.Target, "tables_emptied",
			"with --schema existing pglink empties each target table before it copies into it; they are empty now", "")}
	}
	return nil
}

// ExistingTables lists the tables (schema.name) that already exist on the target.
func ExistingTables(ctx context.Context, conn *pgx.Conn, tables []catalog.Table) ([]string, error) {
	var out []string
	for _, t := range tables {
		var exists bool
		err := conn.QueryRow(ctx, `SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL`,
			t.Schema, t.Name).Scan(&exists)
		if err != nil {
			return nil, fmt.Errorf("target: look for table %s: %w", t.Key(), err)
		}
		if exists {
			out = append(out, t.Key())
		}
	}
	return out, nil
}

func tableModeFindings(tables []catalog.Table, existing []string, schemaMode string) []Finding {
	switch schemaMode {
	case SchemaCopy, "":
		if len(existing) > 0 {
			return []Finding{finding(Blocker, endpoint.Target, "tables_exist", "tables already exist: "+list(existing),
				"drop them on the target, choose an empty target database, or use --schema existing to copy into them (it empties them first: check that the target is the database you mean)")}
		}
	case SchemaExisting:
		have := map[string]bool{}
		for _, k := range existing {
			have[k] = true
		}
		var missing []string
		for _, t := range tables {
			if !have[t.Key()] {
				missing = append(missing, t.Key())
			}
		}
		if len(missing) > 0 {
			return []Finding{finding(Blocker, endpoint.Target, "tables_missing",
				"with --schema existing the tables must exist, and these do not: "+list(missing),
				"create them on the target, or use --schema copy")}
		}
	}
	return nil
}

// originFunctions are the replication origin functions pglink calls on
// the target; only superusers may call them unless granted.
var originFunctions = []string{
	"pg_replication_origin_advance(text, pg_lsn)",
	"pg_replication_origin_create(text)", "pg_replication_origin_drop(text)",
	"pg_replication_origin_progress(text, boolean)", "pg_replication_origin_session_is_setup()",
	"pg_replication_origin_session_reset()", "pg_replication_origin_session_setup(text)",
	"pg_replication_origin_xact_setup(pg_lsn, timestamp with time zone)",
}

// targetRights checks that the user may apply as pglink does: with
// session_replication_role = replica (superuser only, or granted SET on
// PostgreSQL 15+) and with replication origins.
func targetRights(ctx context.Context, conn *pgx.Conn) ([]Finding, error) {
	var user string
	var super bool
	var version int
	err := conn.QueryRow(ctx, `SELECT current_user, rolsuper, current_setting('server_version_num')::int
		FROM pg_roles WHERE rolname = current_user`).Scan(&user, &super, &version)
	if err != nil {
		return nil, fmt.Errorf("target: read the user's role: %w", err)
	}
	if super {
		return nil, nil
	}
	var fs []Finding
	canSet := false
	if version >= 150000 {
		if err := conn.QueryRow(ctx, `SELECT has_parameter_privilege('session_replication_role', 'SET')`).Scan(&canSet); err != nil {
			return nil, fmt.Errorf("target: check the right to set session_replication_role: %w", err)
		}
	}
	if !canSet {
		sql := fmt.Sprintf("GRANT SET ON PARAMETER session_replication_role TO %s;", quote.Ident(user))
		fix := "link with a superuser of the target (on a managed service, its replication-admin role)"
		var stmts []string
		if version >= 150000 {
			fix += ", or run as a superuser on the target: " + sql
			stmts = []string{sql}
		}
		fs = append(fs, finding(Blocker, endpoint.Target, "target_rights",
			fmt.Sprintf("user %s may not set session_replication_role, which pglink's apply needs (as native logical replication's)", user),
			fix, stmts...))
	}
	var missing []string
	for _, f := range originFunctions {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT has_function_privilege($1, 'EXECUTE')`, f).Scan(&ok); err != nil {
			return nil, fmt.Errorf("target: check the right to use %s: %w", f, err)
		}
		if !ok {
			missing = append(missing, fmt.Sprintf("GRANT EXECUTE ON FUNCTION %s TO %s;", f, quote.Ident(user)))
		}
	}
	if len(missing) > 0 {
		fs = append(fs, finding(Blocker, endpoint.Target, "origin_rights",
			fmt.Sprintf("user %s may not use replication origins, where pglink records what it applied", user),
			"link with a superuser of the target, or run as a superuser on the target: "+strings.Join(missing, " "), missing...))
	}
	return fs, nil
}

// originCapacityFindings says whether the target server has room for a
// link's replication origins. PostgreSQL keeps the state of every origin
// in use in one of max_replication_slots entries; pglink's apply uses two
// (one per session), and works on one session when only one is free.
// Only superusers may read the origins in use unless granted
// pg_show_replication_origin_status: otherwise this cannot be told.
func originCapacityFindings(ctx context.Context, conn *pgx.Conn) []Finding {
	var limit, used int
	err := conn.QueryRow(ctx, `SELECT current_setting('max_replication_slots')::int,
		(SELECT count(*) FROM pg_replication_origin_status)::int`).Scan(&limit, &used)
	if err != nil {
		return []Finding{finding(Info, endpoint.Target, "replication_origins",
			"cannot tell how many replication origins are in use on the target (reading pg_replication_origin_status needs a superuser)",
			"make sure max_replication_slots on the target leaves two free for each link")}
	}
	return []Finding{originCapacityFinding(limit, used)}
}

func originCapacityFinding(limit, used int) Finding {
	free := limit - used
	sql := fmt.Sprintf("ALTER SYSTEM SET max_replication_slots = %d;", used+2)
	fix := "run " + sql + " on the target and restart its server"
	switch {
	case free < 1:
		return finding(Blocker, endpoint.Target, "replication_origins",
			fmt.Sprintf("no room for a replication origin, where pglink records what it applied: %d of max_replication_slots = %d are in use", used, limit),
			fix, sql)
	case free < 2:
		return finding(Warning, endpoint.Target, "replication_origins",
			fmt.Sprintf("room for one replication origin (%d of %d in use): pglink's apply will work on one session instead of two, and catch up more slowly", used, limit),
			fix+", or start the link with --apply-sessions 1 to say so", sql)
	}
	return finding(Info, endpoint.Target, "replication_origins", fmt.Sprintf("%d of %d replication origin entries free (a link uses two)", free, limit), "")
}

// TargetRights checks that the user may do on the target database what a
// link does there: apply (targetRights) and keep its state and guard
// (databaseRights, when conn is in the target database: one that does not
// exist yet is the user's own once pglink creates it). A superuser may; a
// managed service's admin role may once granted what the findings name.
func TargetRights(ctx context.Context, conn *pgx.Conn, inDatabase bool) ([]Finding, error) {
	fs, err := targetRights(ctx, conn)
	if err != nil || !inDatabase {
		return fs, err
	}
	dfs, err := databaseRights(ctx, conn)
	if err != nil {
		return nil, err
	}
	return append(fs, dfs...), nil
}

// databaseRights checks the user's rights on the target database itself:
// CREATE, for pglink's schema and the schemas --schema copy makes, and
// ownership, for the read-only default the guard gives the database while
// linked (ALTER DATABASE ... SET is for its owner only).
func databaseRights(ctx context.Context, conn *pgx.Conn) ([]Finding, error) {
	var user, db, owner string
	var super, owns, create bool
	err := conn.QueryRow(ctx, `SELECT current_user, d.datname, o.rolname, u.rolsuper,
			pg_has_role(d.datdba, 'USAGE'), has_database_privilege(d.oid, 'CREATE')
		FROM pg_database d JOIN pg_roles o ON o.oid = d.datdba JOIN pg_roles u ON u.rolname = current_user
		WHERE d.datname = current_database()`).Scan(&user, &db, &owner, &super, &owns, &create)
	if err != nil {
		return nil, fmt.Errorf("target: read the user's rights on the database: %w", err)
	}
	if super {
		return nil, nil
	}
	var fs []Finding
	if !create {
		sql := fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s;", quote.Ident(db), quote.Ident(user))
		fs = append(fs, finding(Blocker, endpoint.Target, "database_create",
			fmt.Sprintf("user %s may not create schemas in database %s: pglink keeps the link's state in schema pglink there, and --schema copy creates the source's schemas", user, db),
			"run as the database's owner or a superuser on the target: "+sql, sql))
	}
	if !owns {
		sql := fmt.Sprintf("ALTER DATABASE %s OWNER TO %s;", quote.Ident(db), quote.Ident(user))
		fs = append(fs, finding(Blocker, endpoint.Target, "database_owner",
			fmt.Sprintf("user %s does not own database %s (its owner is %s): while linked pglink makes the database read-only for every other session (ALTER DATABASE %s SET default_transaction_read_only = on), which only its owner may do",
				user, db, owner, quote.Ident(db)),
			"run as a superuser on the target (on a managed service, its admin role): "+sql+
				" (or link into a database the user creates, or link as its owner)", sql))
	}
	return fs, nil
}
