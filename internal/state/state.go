package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/quote"
)

// The link's durable state lives in the target database, in schema pglink,
// so any pglink process anywhere can resume, report on or drop the link.
// One schema serves every link into that database.
const stateSchemaSQL = `
CREATE SCHEMA IF NOT EXISTS pglink;
CREATE TABLE IF NOT EXISTS pglink.links (
	name            text PRIMARY KEY,
	phase           text NOT NULL,
	seed_step       text NOT NULL DEFAULT 'schema',
	source_desc     text NOT NULL,
	source_system   text NOT NULL,
	source_db       text NOT NULL,
	target_db       text NOT NULL,
	tables_include  text[] NOT NULL DEFAULT '{}',
	tables_exclude  text[] NOT NULL DEFAULT '{}',
	schema_mode     text NOT NULL,
	lag_seconds     double precision,
	txn_per_sec     double precision NOT NULL DEFAULT 0,
	changes_per_sec double precision NOT NULL DEFAULT 0,
	server_wal_end  pg_lsn,
	last_error      text,
	remedy          text,
	created_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Written by the apply in the same transaction as the data it applies;
-- kept apart from pglink.links so the status reporter never waits on it.
CREATE TABLE IF NOT EXISTS pglink.progress (
	link                text PRIMARY KEY REFERENCES pglink.links (name) ON DELETE CASCADE,
	applied_lsn         pg_lsn,
	applied_commit_time timestamptz,
	applied_at          timestamptz,
	txns_applied        bigint NOT NULL DEFAULT 0,
	changes_applied     bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pglink.tables (
	link         text NOT NULL REFERENCES pglink.links (name) ON DELETE CASCADE,
	table_schema text NOT NULL,
	table_name   text NOT NULL,
	state        text NOT NULL DEFAULT 'pending',
	rows_copied  bigint NOT NULL DEFAULT 0,
	bytes_copied bigint NOT NULL DEFAULT 0,
	est_rows     bigint NOT NULL DEFAULT 0,
	est_bytes    bigint NOT NULL DEFAULT 0,
	sync_lsn     pg_lsn,
	copy_started timestamptz,
	PRIMARY KEY (link, table_schema, table_name)
);
-- A validation asks the running link to pause at one source position.
ALTER TABLE pglink.links ADD COLUMN IF NOT EXISTS pause_state text;
ALTER TABLE pglink.links ADD COLUMN IF NOT EXISTS pause_at pg_lsn;
ALTER TABLE pglink.links ADD COLUMN IF NOT EXISTS pause_requested_at timestamptz;
-- A failover records what it did, for pglink status and release-source.
ALTER TABLE pglink.links ADD COLUMN IF NOT EXISTS failover_kind text;
ALTER TABLE pglink.links ADD COLUMN IF NOT EXISTS failover_step text;
ALTER TABLE pglink.links ADD COLUMN IF NOT EXISTS failover_at timestamptz;
ALTER TABLE pglink.links ADD COLUMN IF NOT EXISTS failover_lsn pg_lsn;
-- A reverse link, made by a planned failover with --reverse, names the
-- link it reverses.
ALTER TABLE pglink.links ADD COLUMN IF NOT EXISTS reverse_of text;
CREATE TABLE IF NOT EXISTS pglink.history (
	link   text NOT NULL,
	at     timestamptz NOT NULL DEFAULT now(),
	event  text NOT NULL,
	detail text
);
-- Schema changes carried from the source (pglink start --ddl).
ALTER TABLE pglink.links ADD COLUMN IF NOT EXISTS ddl_mode text NOT NULL DEFAULT 'replicate';
ALTER TABLE pglink.links ADD COLUMN IF NOT EXISTS ddl_key text;
ALTER TABLE pglink.links ADD COLUMN IF NOT EXISTS ddl_note text;
-- From this source position on, the capture binds each message to its
-- transaction (see state.MarkCaptureBound).
ALTER TABLE pglink.links ADD COLUMN IF NOT EXISTS ddl_bound_from pg_lsn;
ALTER TABLE pglink.history ADD COLUMN IF NOT EXISTS source_lsn pg_lsn;
ALTER TABLE pglink.history ADD COLUMN IF NOT EXISTS source_at timestamptz;
-- A schema change the link holds before: by --ddl stop, or because the
-- target refused it; pglink resume-ddl writes the decision.
CREATE TABLE IF NOT EXISTS pglink.ddl_held (
	link       text PRIMARY KEY REFERENCES pglink.links (name) ON DELETE CASCADE,
	source_lsn pg_lsn NOT NULL,
	statement  text NOT NULL,
	reason     text NOT NULL,
	decision   text
);
-- The last failover of each link run from pglink serve's dashboard or
-- API: its steps and result as the dashboard shows them (JSON), so that a
-- serve started again shows it too.
CREATE TABLE IF NOT EXISTS pglink.failover_records (
	link       text PRIMARY KEY,
	record     jsonb NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
-- A running link listens for changes of its pause state, phase and
-- failover (channel pglink_link, the link's name): whoever writes them, a
-- failover script too. ALWAYS: pglink's own sessions write as replicas.
CREATE OR REPLACE FUNCTION pglink.notify_link() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	IF TG_OP = 'DELETE' THEN
		PERFORM pg_notify('pglink_link', OLD.name);
	ELSIF NEW.pause_state IS DISTINCT FROM OLD.pause_state OR NEW.pause_at IS DISTINCT FROM OLD.pause_at
		OR NEW.phase IS DISTINCT FROM OLD.phase OR NEW.failover_kind IS DISTINCT FROM OLD.failover_kind THEN
		PERFORM pg_notify('pglink_link', NEW.name);
	END IF;
	RETURN NULL;
END
$f$;
DROP TRIGGER IF EXISTS notify_link ON pglink.links;
CREATE TRIGGER notify_link AFTER UPDATE OF pause_state, pause_at, phase, failover_kind OR DELETE ON pglink.links
	FOR EACH ROW EXECUTE FUNCTION pglink.notify_link();
ALTER TABLE pglink.links ENABLE ALWAYS TRIGGER notify_link;
CREATE OR REPLACE FUNCTION pglink.refuse_write() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
	RAISE EXCEPTION 'table %.% is the target of a pglink link and read-only until failover', TG_TABLE_SCHEMA, TG_TABLE_NAME
		USING ERRCODE = '25006', HINT = 'run pglink failover, or pglink drop to end the link';
END
$f$;
`

// Seeding steps, in order, kept in pglink.links.seed_step.
const (
	StepSchema = "schema" // pre-data schema not yet on the target
	StepCopy   = "copy"   // copying table data
	StepPost   = "post"   // indexes, constraints, triggers
	StepDone   = "done"
)

// Link is a link's row in pglink.links.
type Link struct {
	Name, SeedStep                 string
	Phase                          Phase
	SourceDesc, SourceSystem       string
	SourceDB, TargetDB, SchemaMode string
	Include, Exclude               []string
	AppliedLSN                     change.LSN
	AppliedCommitTime, AppliedAt   *time.Time
	TxnsApplied, ChangesApplied    int64
	LagSeconds                     *float64
	TxnPerSec, ChangesPerSec       float64
	ServerWALEnd                   change.LSN
	LastError, Remedy              *string
	CreatedAt, UpdatedAt           time.Time
	FailoverKind                   *string
	FailoverStep                   *FailoverStep
	PauseState                     *string
	FailoverLSN                    change.LSN
	ReverseOf                      *string // the link this one reverses
}

var ErrNoLink = errors.New("no such link")

// stateSchemaVersion marks the schema pglink made, as its comment: a
// schema of this very definition needs no DDL, whose ALTER TABLEs would
// take an exclusive lock that every status and failover waits for.
var stateSchemaVersion = func() string {
	sum := sha256.Sum256([]byte(stateSchemaSQL + guardSchemaSQL))
	return "pglink state " + hex.EncodeToString(sum[:8])
}()

func Ensure(ctx context.Context, conn *pgx.Conn) error {
	var have *string
	err := conn.QueryRow(ctx, `SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'pglink'`).Scan(&have)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("target: read schema pglink: %w", err)
	}
	if have != nil && *have == stateSchemaVersion {
		return nil
	}
	if _, err := conn.Exec(ctx, stateSchemaSQL+guardSchemaSQL+"COMMENT ON SCHEMA pglink IS "+quote.Literal(stateSchemaVersion)); err != nil {
		return fmt.Errorf("target: create schema pglink: %w", err)
	}
	return nil
}

// Exists reports whether the target has pglink's tables.
func Exists(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, `SELECT to_regclass('pglink.links') IS NOT NULL`).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("target: look for schema pglink: %w", err)
	}
	return ok, nil
}

func Load(ctx context.Context, conn *pgx.Conn, name string) (*Link, error) {
	r := &Link{}
	var applied, walEnd, failoverLSN *string
	err := conn.QueryRow(ctx, `SELECT name, phase, seed_step, source_desc, source_system, source_db, target_db,
		schema_mode, tables_include, tables_exclude, p.applied_lsn::text, p.applied_commit_time, p.applied_at,
		coalesce(p.txns_applied, 0), coalesce(p.changes_applied, 0), lag_seconds, txn_per_sec, changes_per_sec,
		server_wal_end::text, last_error, remedy, created_at, updated_at, failover_kind, failover_step,
		pause_state, failover_lsn::text, reverse_of
		FROM pglink.links l LEFT JOIN pglink.progress p ON p.link = l.name WHERE l.name = $1`, name).Scan(&r.Name, &r.Phase, &r.SeedStep, &r.SourceDesc,
		&r.SourceSystem, &r.SourceDB, &r.TargetDB, &r.SchemaMode, &r.Include, &r.Exclude, &applied,
		&r.AppliedCommitTime, &r.AppliedAt, &r.TxnsApplied, &r.ChangesApplied, &r.LagSeconds, &r.TxnPerSec,
		&r.ChangesPerSec, &walEnd, &r.LastError, &r.Remedy, &r.CreatedAt, &r.UpdatedAt, &r.FailoverKind,
		&r.FailoverStep, &r.PauseState, &failoverLSN, &r.ReverseOf)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoLink
	}
	if err != nil {
		return nil, fmt.Errorf("target: read link %s: %w", name, err)
	}
	r.AppliedLSN = ParseLSN(applied)
	r.ServerWALEnd = ParseLSN(walEnd)
	r.FailoverLSN = ParseLSN(failoverLSN)
	return r, nil
}

func ParseLSN(s *string) change.LSN {
	if s == nil {
		return 0
	}
	var hi, lo uint32
	if _, err := fmt.Sscanf(*s, "%X/%X", &hi, &lo); err != nil {
		return 0
	}
	return change.LSN(uint64(hi)<<32 | uint64(lo))
}

func SetPhase(ctx context.Context, conn *pgx.Conn, name string, phase Phase) error {
	_, err := conn.Exec(ctx, `UPDATE pglink.links SET phase = $2, updated_at = now() WHERE name = $1`, name, phase)
	if err != nil {
		return fmt.Errorf("target: set link %s phase %s: %w", name, phase, err)
	}
	return nil
}

func SetSeedStep(ctx context.Context, conn *pgx.Conn, name, step string) error {
	_, err := conn.Exec(ctx, `UPDATE pglink.links SET seed_step = $2, updated_at = now() WHERE name = $1`, name, step)
	if err != nil {
		return fmt.Errorf("target: set link %s seeding step %s: %w", name, step, err)
	}
	return nil
}

// SetError records the last error and its remedy (empty clears them).
func SetError(ctx context.Context, conn *pgx.Conn, name, msg, remedy string) error {
	_, err := conn.Exec(ctx, `UPDATE pglink.links SET last_error = nullif($2, ''), remedy = nullif($3, ''),
		updated_at = now() WHERE name = $1`, name, msg, remedy)
	if err != nil {
		return fmt.Errorf("target: record error of link %s: %w", name, err)
	}
	return nil
}

func AddHistory(ctx context.Context, conn *pgx.Conn, name string, event Event, detail string) error {
	_, err := conn.Exec(ctx, `INSERT INTO pglink.history (link, event, detail) VALUES ($1, $2, $3)`, name, event, detail)
	if err != nil {
		return fmt.Errorf("target: record %s of link %s: %w", event, name, err)
	}
	return nil
}

// Table is a table's seeding state.
type Table struct {
	Schema, Name string
	State        TableState
	Rows, Bytes  int64
	EstRows      int64
	EstBytes     int64
	SyncLSN      change.LSN
}

func (t Table) Key() string { return t.Schema + "." + t.Name }

func LoadTables(ctx context.Context, conn *pgx.Conn, name string) ([]Table, error) {
	rows, err := conn.Query(ctx, `SELECT table_schema, table_name, state, rows_copied, bytes_copied, est_rows,
		est_bytes, sync_lsn::text FROM pglink.tables WHERE link = $1 ORDER BY table_schema, table_name`, name)
	if err != nil {
		return nil, fmt.Errorf("target: read tables of link %s: %w", name, err)
	}
	var out []Table
	for rows.Next() {
		var t Table
		var lsn *string
		if err := rows.Scan(&t.Schema, &t.Name, &t.State, &t.Rows, &t.Bytes, &t.EstRows, &t.EstBytes, &lsn); err != nil {
			return nil, fmt.Errorf("target: read tables of link %s: %w", name, err)
		}
		t.SyncLSN = ParseLSN(lsn)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("target: read tables of link %s: %w", name, err)
	}
	return out, nil
}

func MarkTable(ctx context.Context, conn *pgx.Conn, link string, t Table) error {
	var lsn *string
	if t.SyncLSN != 0 {
		s := t.SyncLSN.String()
		lsn = &s
	}
	_, err := conn.Exec(ctx, `UPDATE pglink.tables SET state = $4, rows_copied = $5, bytes_copied = $6,
		sync_lsn = $7::pg_lsn, copy_started = CASE WHEN $4 = 'copying' THEN now() ELSE copy_started END
		WHERE link = $1 AND table_schema = $2 AND table_name = $3`,
		link, t.Schema, t.Name, t.State, t.Rows, t.Bytes, lsn)
	if err != nil {
		return fmt.Errorf("target: record state of table %s: %w", t.Key(), err)
	}
	return nil
}

// RecordSourceSystem records the identity of the link's source database.
func RecordSourceSystem(ctx context.Context, conn *pgx.Conn, link, id string) error {
	if _, err := conn.Exec(ctx, `UPDATE pglink.links SET source_system = $2 WHERE name = $1`, link, id); err != nil {
		return fmt.Errorf("target: record the source's identity for link %s: %w", link, err)
	}
	return nil
}

// CatalogTables names the tables of rows.
func CatalogTables(rows []Table) []catalog.Table {
	out := make([]catalog.Table, len(rows))
	for i, r := range rows {
		out[i] = catalog.Table{Schema: r.Schema, Name: r.Name}
	}
	return out
}
