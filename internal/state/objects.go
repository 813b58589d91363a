package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/wait"
)

// PublicationComment marks a publication as made by pglink for one link.
func PublicationComment(link string) string { return "pglink link " + link }

// PublicationOwner tells whether the publication exists and whether it is
// this link's.
func PublicationOwner(ctx context.Context, conn *pgx.Conn, pub, link string) (exists, ours bool, err error) {
	var comment *string
	err = conn.QueryRow(ctx, `SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1`,
		pub).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("source: look for publication %s: %w", pub, err)
	}
	return true, comment != nil && *comment == PublicationComment(link), nil
}

func CreatePublication(ctx context.Context, conn *pgx.Conn, pub, link string, tables []catalog.Table) error {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.QualifiedName()
	}
	// publish_via_partition_root: changes of partitions arrive as their
	// root, so the target may partition differently (PostgreSQL 13+).
	sql := fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE %s WITH (publish_via_partition_root = true);
		COMMENT ON PUBLICATION %[1]s IS '%[3]s'`,
		pgx.Identifier{pub}.Sanitize(), strings.Join(names, ", "), PublicationComment(link))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("source: create publication %s: %w (the user must own the tables, or be superuser)", pub, err)
	}
	return nil
}

func DropPublication(ctx context.Context, conn *pgx.Conn, pub string) error {
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{pub}.Sanitize()); err != nil {
		return fmt.Errorf("source: drop publication %s: %w", pub, err)
	}
	return nil
}

// SlotState describes a replication slot on the source.
type SlotState struct {
	Exists, Active bool
	Database       string
	Plugin         string
}

func LookupSlot(ctx context.Context, conn *pgx.Conn, slot string) (SlotState, error) {
	var s SlotState
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

// backoffStep spaces the tries to drop a slot that a session still holds.
const backoffStep = 250 * time.Millisecond

// DropSlot drops a slot when it exists, ending the session that holds it
// first, and reports whether there was one.
func DropSlot(ctx context.Context, conn *pgx.Conn, slot string) (dropped bool, err error) {
	_, err = conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
		WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
	if err != nil {
		return false, fmt.Errorf("source: end the session of slot %s: %w", slot, err)
	}
	for attempt := 0; ; attempt++ {
		tag, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if err == nil {
			return tag.RowsAffected() > 0, nil
		}
		if attempt >= 20 || !strings.Contains(err.Error(), "is active") {
			return false, fmt.Errorf("source: drop replication slot %s: %w", slot, err)
		}
		if err := wait.Sleep(ctx, backoffStep); err != nil {
			return false, err
		}
	}
}

// SourceIdentity reads the identity of both sides' databases and
// refuses a target that is the source itself.
func SourceIdentity(ctx context.Context, srcConn, tgtConn *pgx.Conn, src, tgt *endpoint.Endpoint) (catalog.Identity, error) {
	srcID, err := catalog.DatabaseIdentity(ctx, srcConn)
	if err != nil {
		return srcID, fmt.Errorf("source: %w", err)
	}
	tgtID, err := catalog.DatabaseIdentity(ctx, tgtConn)
	if err != nil {
		return srcID, fmt.Errorf("target: %w", err)
	}
	return srcID, assess.SameDatabase(srcID, tgtID, src.Describe(), tgt.Describe())
}

// TargetSessionParams are set on every session pglink opens on the target:
// the target database is read-only for everyone else, and pglink's writes
// behave like native logical replication's apply (no user triggers, no FK
// checks: the source already ran them). The timeouts an application's
// database settings may give (carried from the source, see carrySettings)
// are not for pglink's long batches and waits.
var TargetSessionParams = map[string]string{
	"default_transaction_read_only":       "off",
	"session_replication_role":            "replica",
	"DateStyle":                           "ISO",
	"IntervalStyle":                       "postgres",
	"extra_float_digits":                  "3",
	"statement_timeout":                   "0",
	"lock_timeout":                        "0",
	"idle_in_transaction_session_timeout": "0",
}

// ParseEndpoints reads the source and target connection strings; the
// target's sessions get pglink's settings.
func ParseEndpoints(source, target string) (src, tgt *endpoint.Endpoint, err error) {
	if src, err = endpoint.Parse(endpoint.Source, source); err != nil {
		return nil, nil, err
	}
	if tgt, err = endpoint.Parse(endpoint.Target, target); err != nil {
		return nil, nil, err
	}
	return src, TargetEndpoint(tgt), nil
}

// ConnectTarget opens a session on target as the user's connection string
// gives it, without pglink's settings: for one read or write of the
// pglink schema by a command or the dashboard.
func ConnectTarget(ctx context.Context, target string) (*pgx.Conn, error) {
	tgt, err := endpoint.Parse(endpoint.Target, target)
	if err != nil {
		return nil, err
	}
	return tgt.Connect(ctx)
}

// TargetEndpoint returns the target endpoint with pglink's session settings.
func TargetEndpoint(ep *endpoint.Endpoint) *endpoint.Endpoint {
	return ep.WithRuntimeParams(TargetSessionParams)
}

// SlotWALStatus returns the slot's wal_status (reserved, extended,
// unreserved, lost), or "" when there is no such slot.
func SlotWALStatus(ctx context.Context, conn *pgx.Conn, slot string) (string, error) {
	var status *string
	err := conn.QueryRow(ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && status == nil {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("source: read slot %s: %w", slot, err)
	}
	return *status, nil
}

func SlotLostError(name, slot string) error {
	return &endpoint.Error{Side: endpoint.Source,
		Cause: fmt.Sprintf("the link's replication slot %s was invalidated (wal_status lost): it held more WAL than max_slot_wal_keep_size allows, "+
			"so the source removed WAL the link had not applied yet, and the link cannot resume", slot),
		Remedy: SlotLostRemedy(name)}
}

func SlotLostRemedy(name string) string {
	return fmt.Sprintf("drop the link and seed it again: pglink drop --name %s (the target's data stays), then pglink start with the same options "+
		"and --schema existing --truncate-existing (it empties the tables the target holds and copies them afresh), or into an empty target database; "+
		"raise max_slot_wal_keep_size on the source (or set it to -1) so that it does not happen again", name)
}

// SourceFenced tells whether the source database refuses writes: a
// failover's fence (schema pglink_fence) stands and the database defaults
// to read-only.
func SourceFenced(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var fenced bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pglink_fence')
		AND EXISTS (SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
			WHERE d.datname = current_database() AND s.setrole = 0
			  AND 'default_transaction_read_only=on' = ANY (s.setconfig))`).Scan(&fenced)
	if err != nil {
		return false, fmt.Errorf("source: read the write fence: %w", err)
	}
	return fenced, nil
}
