package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/change"
)

// Events of the schema changes a link carries.
const (
	EventDDLApplied Event = "ddl_applied" // run on the target
	EventDDLSkipped Event = "ddl_skipped" // left out by pglink resume-ddl --skip
	EventDDLIgnored Event = "ddl_ignored" // left out: --ddl ignore, or it touches no table the link carries
)

// DDLHistorySQL records a carried schema change in the apply's own
// transaction: ($1 link, $2 event, $3 statement, $4 source position, $5
// source time).
const DDLHistorySQL = `INSERT INTO pglink.history (link, event, detail, source_lsn, source_at)
	VALUES ($1, $2, $3, $4::text::pg_lsn, nullif($5, '')::timestamptz)`

// ClearHeldSQL forgets the held schema change ($1 link) in the
// transaction that applies or skips it.
const ClearHeldSQL = `DELETE FROM pglink.ddl_held WHERE link = $1`

// HeldDDL is a schema change the link holds before.
type HeldDDL struct {
	LSN       change.LSN
	Statement string
	Reason    string
	Decision  string // "", "apply" or "skip"
}

// Decisions of pglink resume-ddl.
const (
	ResumeApply = "apply"
	ResumeSkip  = "skip"
)

// LoadHeldDDL reads the held schema change of the link; nil when none.
func LoadHeldDDL(ctx context.Context, conn *pgx.Conn, link string) (*HeldDDL, error) {
	var h HeldDDL
	var lsn string
	var decision *string
	err := conn.QueryRow(ctx, `SELECT source_lsn::text, statement, reason, decision FROM pglink.ddl_held WHERE link = $1`,
		link).Scan(&lsn, &h.Statement, &h.Reason, &decision)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("target: read the held schema change of link %s: %w", link, err)
	}
	h.LSN, h.Decision = ParseLSN(&lsn), Deref(decision)
	return &h, nil
}

// HoldDDL records that the link holds before the schema change at lsn. A
// decision already taken for that very change stays.
func HoldDDL(ctx context.Context, conn *pgx.Conn, link string, h HeldDDL) error {
	_, err := conn.Exec(ctx, `INSERT INTO pglink.ddl_held (link, source_lsn, statement, reason) VALUES ($1, $2::text::pg_lsn, $3, $4)
		ON CONFLICT (link) DO UPDATE SET statement = excluded.statement, reason = excluded.reason,
			decision = CASE WHEN pglink.ddl_held.source_lsn = excluded.source_lsn THEN pglink.ddl_held.decision END,
			source_lsn = excluded.source_lsn`, link, h.LSN.String(), h.Statement, h.Reason)
	if err != nil {
		return fmt.Errorf("target: record the held schema change of link %s: %w", link, err)
	}
	return nil
}

// ResumeDDL records the decision for the held schema change; the running
// link (or the next start) goes on with it at its next attempt.
func ResumeDDL(ctx context.Context, conn *pgx.Conn, link, decision string) (*HeldDDL, error) {
	var h HeldDDL
	var lsn string
	// Read-write: the target's database starts its sessions read-only.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadWrite})
	if err == nil {
		defer tx.Rollback(context.WithoutCancel(ctx))
		err = tx.QueryRow(ctx, `UPDATE pglink.ddl_held SET decision = $2 WHERE link = $1
			RETURNING source_lsn::text, statement, reason`, link, decision).Scan(&lsn, &h.Statement, &h.Reason)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("link %s holds before no schema change: nothing to resume", link)
	}
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("target: record the decision for the held schema change of link %s: %w", link, err)
	}
	h.LSN, h.Decision = ParseLSN(&lsn), decision
	return &h, nil
}

// DDLRecord is a schema change in the link's history.
type DDLRecord struct {
	Event     Event      `json:"event"`
	Statement string     `json:"statement"`
	SourceLSN string     `json:"source_lsn,omitempty"`
	SourceAt  *time.Time `json:"source_at,omitempty"`
	At        time.Time  `json:"at"`
}

// RecentDDL returns the link's last n schema changes, newest first.
func RecentDDL(ctx context.Context, conn *pgx.Conn, link string, n int) ([]DDLRecord, error) {
	rows, err := conn.Query(ctx, `SELECT event, coalesce(detail, ''), coalesce(source_lsn::text, ''), source_at, at
		FROM pglink.history WHERE link = $1 AND event LIKE 'ddl\_%' ORDER BY at DESC, source_lsn DESC LIMIT $2`, link, n)
	if err != nil {
		return nil, fmt.Errorf("target: read the schema changes of link %s: %w", link, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (d DDLRecord, err error) {
		err = row.Scan(&d.Event, &d.Statement, &d.SourceLSN, &d.SourceAt, &d.At)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("target: read the schema changes of link %s: %w", link, err)
	}
	return out, nil
}
