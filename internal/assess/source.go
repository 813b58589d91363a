package assess

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/quote"
)

// Supported major versions of PostgreSQL, for the source and the target.
const (
	MinVersion = 13
	MaxVersion = 18
)

// sourceSettings is what the source's settings and the user's role say
// about a link.
type sourceSettings struct {
	VersionNum     int
	Version        string
	WalLevel       string
	MaxSlots       int
	UsedSlots      int
	MaxSenders     int
	UsedSenders    int
	DecodingMem    string // logical_decoding_work_mem as the server shows it
	SlotKeepMB     int64  // max_slot_wal_keep_size in MB; -1 for no limit
	User           string
	Superuser      bool
	Replication    bool
	CreateOnDB     bool
	Database       string
	DatabaseExists bool
}

// readSourceSettings reads the settings in one query. pg_settings and
// pg_stat_activity's backend_type can be read by every user.
func readSourceSettings(ctx context.Context, conn *pgx.Conn) (sourceSettings, error) {
	var s sourceSettings
	err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, current_setting('server_version'),
		current_setting('wal_level'),
		current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots)::int,
		current_setting('max_wal_senders')::int,
		(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')::int,
		current_setting('logical_decoding_work_mem'),
		(SELECT setting::int8 FROM pg_settings WHERE name = 'max_slot_wal_keep_size'),
		current_user, r.rolsuper, r.rolreplication,
		has_database_privilege(current_database(), 'CREATE'), current_database()
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&s.VersionNum, &s.Version, &s.WalLevel,
		&s.MaxSlots, &s.UsedSlots, &s.MaxSenders, &s.UsedSenders, &s.DecodingMem, &s.SlotKeepMB,
		&s.User, &s.Superuser, &s.Replication, &s.CreateOnDB, &s.Database)
	if err != nil {
		return s, fmt.Errorf("source: read settings: %w", err)
	}
	return s, nil
}

// CheckSource runs every check of the source for a link of tables (the
// tables the link would carry, as catalog.Tables lists them): version,
// settings, capacity, the user's rights, the tables themselves and what
// logical replication does not carry.
func CheckSource(ctx context.Context, conn *pgx.Conn, tables []catalog.Table) ([]Finding, error) {
	s, err := readSourceSettings(ctx, conn)
	if err != nil {
		return nil, err
	}
	fs := settingsFindings(s)
	fs = append(fs, replicationConnFindings(ctx, conn, s)...)
	fs = append(fs, tableFindings(tables)...)
	rights, err := tableRights(ctx, conn, tables, s)
	if err != nil {
		return nil, err
	}
	fs = append(fs, rights...)
	parts, err := partitionTruncateFinding(ctx, conn, tables, s)
	if err != nil {
		return nil, err
	}
	fs = append(fs, parts...)
	fs = append(fs, ddlCaptureFindings(s)...)
	objs, err := objectFindings(ctx, conn)
	if err != nil {
		return nil, err
	}
	settings, err := dbSettingsFindings(ctx, conn)
	if err != nil {
		return nil, err
	}
	fs = append(fs, settings...)
	return append(fs, objs...), nil
}

func settingsFindings(s sourceSettings) []Finding {
	src := endpoint.Source
	var fs []Finding
	fs = append(fs, versionFinding(src, s.VersionNum, s.Version))
	if s.WalLevel != "logical" {
		fs = append(fs, finding(Blocker, src, "wal_level",
			fmt.Sprintf("wal_level is %q; logical replication needs \"logical\"", s.WalLevel),
			"run ALTER SYSTEM SET wal_level = logical; on the source and restart its server (pglink prepare does the first part)",
			"ALTER SYSTEM SET wal_level = logical;"))
	}
	fs = append(fs, capacityFinding("replication_slots", "max_replication_slots", "replication slots", s.MaxSlots, s.UsedSlots))
	fs = append(fs, capacityFinding("wal_senders", "max_wal_senders", "WAL senders", s.MaxSenders, s.UsedSenders))
	if !s.Superuser && !s.Replication {
		sql := fmt.Sprintf("ALTER ROLE %s WITH REPLICATION;", quote.Ident(s.User))
		fs = append(fs, finding(Blocker, src, "replication_right", "the user has no REPLICATION right",
			"run "+sql+" as a superuser on the source", sql))
	}
	if !s.Superuser && !s.CreateOnDB {
		sql := fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s;", quote.Ident(s.Database), quote.Ident(s.User))
		fs = append(fs, finding(Blocker, src, "create_right",
			fmt.Sprintf("the user may not create a publication in database %s (no CREATE right on it)", s.Database),
			"run "+sql+" as the database's owner or a superuser", sql))
	}
	fs = append(fs, finding(Info, src, "logical_decoding_work_mem",
		fmt.Sprintf("logical_decoding_work_mem is %s: a transaction that decodes to more than this is streamed to pglink while it runs (PostgreSQL 14+) or spilled to the source's disk (13)", s.DecodingMem),
		"nothing to do; raise it (ALTER SYSTEM SET logical_decoding_work_mem = '256MB'; SELECT pg_reload_conf();) if the source's pg_stat_replication_slots shows many spills"))
	fs = append(fs, slotKeepFinding(s.SlotKeepMB))
	return fs
}

// versionFinding says whether a server's major version is supported.
func versionFinding(side endpoint.Side, num int, version string) Finding {
	major := num / 10000
	if major < MinVersion || major > MaxVersion {
		return finding(Blocker, side, "version",
			fmt.Sprintf("PostgreSQL %s is not supported: pglink works with PostgreSQL %d to %d", version, MinVersion, MaxVersion),
			fmt.Sprintf("use a %s server of PostgreSQL %d to %d", side, MinVersion, MaxVersion))
	}
	return finding(Info, side, "version", "PostgreSQL "+version, "")
}

// capacityFinding checks that a link finds a free slot or WAL sender: one
// for the link itself, and while a resumed seeding runs, a second one for
// its temporary slot.
func capacityFinding(check, setting, what string, max, used int) Finding {
	free := max - used
	sql := fmt.Sprintf("ALTER SYSTEM SET %s = %d;", setting, used+2)
	fix := "run " + sql + " on the source and restart its server"
	switch {
	case free < 1:
		return finding(Blocker, endpoint.Source, check,
			fmt.Sprintf("no free %s: %d of %s = %d are in use", what, used, setting, max), fix, sql)
	case free < 2:
		return finding(Warning, endpoint.Source, check,
			fmt.Sprintf("one free %s (%d of %d in use): enough for the link, but a seeding resumed after a stop needs a second one for a while", what, used, max),
			fix, sql)
	}
	return finding(Info, endpoint.Source, check, fmt.Sprintf("%d of %d %s free", free, max, what), "")
}

func slotKeepFinding(keepMB int64) Finding {
	if keepMB < 0 {
		return finding(Info, endpoint.Source, "max_slot_wal_keep_size",
			"max_slot_wal_keep_size is -1: the slot keeps all WAL the link has not applied yet, without limit, so a stopped link can fill the source's disk",
			"watch \"slot retains\" in pglink status and drop a link you no longer need; to cap it, ALTER SYSTEM SET max_slot_wal_keep_size = '100GB'; SELECT pg_reload_conf(); (a slot past the cap is invalidated and its link must start again from scratch)")
	}
	return finding(Warning, endpoint.Source, "max_slot_wal_keep_size",
		fmt.Sprintf("max_slot_wal_keep_size is %s: the link's slot is invalidated when the link falls behind the source by that much WAL (while it seeds, or while it is stopped or slow), and the link must then be dropped and seeded again", formatBytes(keepMB<<20)),
		"make sure the WAL written while the link seeds or is stopped fits (pglink assess --sample 30s estimates it), or lift the cap: ALTER SYSTEM SET max_slot_wal_keep_size = -1; SELECT pg_reload_conf();",
		"ALTER SYSTEM SET max_slot_wal_keep_size = -1;", "SELECT pg_reload_conf();")
}

// replicationConnFindings opens a replication connection as the user, as
// the link will: this is where pg_hba.conf's replication lines and
// max_wal_senders are enforced, which SQL cannot see.
func replicationConnFindings(ctx context.Context, conn *pgx.Conn, s sourceSettings) []Finding {
	if !s.Superuser && !s.Replication {
		return nil // already reported; the server would refuse for that reason
	}
	cfg := conn.Config().Config.Copy()
	cfg.RuntimeParams["replication"] = "database"
	rc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return []Finding{finding(Blocker, endpoint.Source, "replication_connection",
			"a replication connection as the user is refused: "+redact(err, cfg.Password),
			fmt.Sprintf("allow it in the source's pg_hba.conf with a line like: host replication %s <pglink's address>/32 scram-sha-256, then reload it (SELECT pg_reload_conf();); if the server names max_wal_senders, free or add WAL senders", s.User))}
	}
	rc.Close(context.WithoutCancel(ctx))
	return nil
}

// tableFindings checks the tables themselves: there are some, and each can
// be replicated.
func tableFindings(tables []catalog.Table) []Finding {
	var fs []Finding
	if len(tables) == 0 {
		fs = append(fs, finding(Blocker, endpoint.Source, "no_tables",
			"no tables to link (the database is empty or the filters exclude everything)",
			"check --tables and --exclude-tables"))
	}
	if bad := catalog.NoIdentity(tables); len(bad) > 0 {
		names := make([]string, len(bad))
		var fixes []string
		for i, t := range bad {
			names[i] = t.Key()
			fixes = append(fixes, catalog.IdentityFix(t)...)
		}
		fs = append(fs, finding(Blocker, endpoint.Source, "replica_identity",
			"tables without primary key and without replica identity cannot replicate UPDATE and DELETE: "+list(names),
			"add a primary key, or run on the source: "+strings.Join(fixes, " ")+" (or leave them out with --exclude-tables; pglink prepare --replica-identity-full runs these)",
			fixes...))
	}
	var unlogged, fixes []string
	for _, t := range tables {
		if t.Unlogged {
			unlogged = append(unlogged, t.Key())
			fixes = append(fixes, fmt.Sprintf("ALTER TABLE %s SET LOGGED;", t.QualifiedName()))
		}
	}
	if len(unlogged) > 0 {
		fs = append(fs, finding(Blocker, endpoint.Source, "unlogged_tables",
			"unlogged tables are not written to the WAL and cannot be replicated: "+list(unlogged),
			"run on the source: "+strings.Join(fixes, " ")+" (it rewrites the table under an exclusive lock), or leave them out with --exclude-tables",
			fixes...))
	}
	return fs
}

// partitionTruncateFinding warns about partitions whose TRUNCATE alone
// will not reach the target. A link publishes partitions through their
// root, and then PostgreSQL sends no TRUNCATE of one partition; pglink
// carries it with a trigger on each partition, which a PostgreSQL 13
// source cannot (its pgoutput has no logical messages), and which only
// the partition's owner or a superuser may create.
func partitionTruncateFinding(ctx context.Context, conn *pgx.Conn, tables []catalog.Table, s sourceSettings) ([]Finding, error) {
	var roots, quoted []string
	for _, t := range tables {
		if t.Partitioned {
			roots, quoted = append(roots, t.Key()), append(quoted, t.QualifiedName())
		}
	}
	if len(roots) == 0 {
		return nil, nil
	}
	const remedy = "while linked, empty a partition with DELETE, or TRUNCATE the partitioned table; pglink validate finds a partition emptied otherwise"
	if s.VersionNum < 140000 {
		return []Finding{finding(Warning, endpoint.Source, "partition_truncate",
			"a TRUNCATE of a single partition on the source does not reach the target (PostgreSQL publishes partitions through their partitioned table and sends no TRUNCATE of one partition, and on PostgreSQL 13 pglink cannot carry it with a logical message): "+list(roots),
			remedy+"; or upgrade the source to 14 or later")}, nil
	}
	if s.Superuser {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM unnest($1::text[]) r(name)
		CROSS JOIN LATERAL pg_partition_tree(to_regclass(r.name)) p JOIN pg_class c ON c.oid = p.relid
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.relid <> to_regclass(r.name) AND NOT pg_has_role(current_user, c.relowner, 'USAGE') ORDER BY 1`, quoted)
	if err != nil {
		return nil, fmt.Errorf("source: read the owners of the partitions: %w", err)
	}
	others, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(others) == 0 {
		return nil, err
	}
	return []Finding{finding(Warning, endpoint.Source, "partition_truncate",
		"a TRUNCATE of one of these partitions alone does not reach the target: pglink carries it with a trigger on the partition, which only its owner or a superuser may create, and the user is neither: "+list(others),
		"link as the partitions' owner or a superuser; or, "+remedy)}, nil
}

// ddlCaptureFindings warns when the source's schema changes cannot be
// carried: the capture is an event trigger, which only a superuser may
// create, and it travels as a logical message, which PostgreSQL 13's
// pgoutput does not send. pglink start then goes on with --ddl ignore.
func ddlCaptureFindings(s sourceSettings) []Finding {
	const what = "schema changes made on the source while linked will not reach the target: "
	const after = "; the link goes on with --ddl ignore, and stops at the first change its rows need (then alter the target's table the same way by hand, as a superuser there, and restart the link)"
	switch {
	case s.VersionNum < 140000:
		return []Finding{finding(Warning, endpoint.Source, "ddl_capture",
			what+"PostgreSQL 13's pgoutput does not carry the logical messages pglink sends them in",
			"upgrade the source to 14 or later, or make no schema change while linked"+after)}
	case !s.Superuser:
		return []Finding{finding(Warning, endpoint.Source, "ddl_capture",
			what+"role "+s.User+" is not a superuser, and only a superuser may create the event trigger that captures them",
			"connect as a superuser of the source (or the managed service's admin role), or make no schema change while linked"+after)}
	}
	return nil
}
