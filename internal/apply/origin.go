package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/change"
)

// EnsureOrigin creates the replication origins names when they are
// missing. An origin is where the target records, in the same transaction
// as the data, the source position it has applied (as native logical
// replication does), so it must exist before the first Run. An Applier
// with a second session (Options.Second) records through a second origin.
func EnsureOrigin(ctx context.Context, conn *pgx.Conn, names ...string) error {
	for _, name := range names {
		_, err := conn.Exec(ctx, `SELECT pg_replication_origin_create($1::text)
			WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1::text)`, name)
		if err != nil {
			return fmt.Errorf("create replication origin %s: %w", name, err)
		}
	}
	return nil
}

// OriginProgress returns the source position last committed through the
// origins names, the furthest of them (pg_replication_origin_progress(name,
// true): flushed progress only, what survives a crash of the target). It
// is 0 when no origin exists or has been used. The furthest is the
// position: the sessions of one Applier commit in source order, and WAL is
// flushed in order, so every batch before the furthest one is there too.
func OriginProgress(ctx context.Context, conn *pgx.Conn, names ...string) (change.LSN, error) {
	var text string
	err := conn.QueryRow(ctx, `SELECT coalesce(
			(SELECT max(pg_replication_origin_progress(roname, true))::text FROM pg_replication_origin WHERE roname = ANY($1::text[])),
			'0/0')`, names).Scan(&text)
	if err != nil {
		return 0, fmt.Errorf("read progress of replication origin %s: %w", strings.Join(names, ", "), err)
	}
	lsn, err := pglogrepl.ParseLSN(text)
	if err != nil {
		return 0, fmt.Errorf("read progress of replication origin %s: %w", strings.Join(names, ", "), err)
	}
	return lsn, nil
}

// FoldOrigin moves the progress of origin from into origin into when it is
// further, then drops from: an Applier that ran on two sessions and now
// runs on one frees the target's origin entry (max_replication_slots) the
// second one held. The furthest flushed progress of the two, the position
// OriginProgress returns, is the same before and after. Nothing happens
// when from does not exist.
func FoldOrigin(ctx context.Context, conn *pgx.Conn, into, from string) error {
	_, err := conn.Exec(ctx, `SELECT pg_replication_origin_advance($1::text, f.lsn)
		FROM (SELECT pg_replication_origin_progress(roname, true) AS lsn FROM pg_replication_origin
			WHERE roname = $2::text) f
		WHERE f.lsn > coalesce((SELECT pg_replication_origin_progress(roname, true) FROM pg_replication_origin
			WHERE roname = $1::text), '0/0')`, into, from)
	if err != nil {
		return fmt.Errorf("move the progress of replication origin %s into %s: %w", from, into, err)
	}
	return DropOrigin(ctx, conn, from)
}

// DropOrigin drops the replication origins names that exist. PostgreSQL
// refuses while a session still has one set up (a running Applier).
func DropOrigin(ctx context.Context, conn *pgx.Conn, names ...string) error {
	_, err := conn.Exec(ctx, `SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = ANY($1::text[])`, names)
	if err != nil {
		return fmt.Errorf("drop replication origin %s: %w", strings.Join(names, ", "), err)
	}
	return nil
}

// sessionSettings are what every pglink writer on the target runs with.
// session_replication_role = replica keeps user and foreign-key triggers
// from firing, like native apply (the source already ran them, and the
// read-only guard triggers must not fire for pglink). The text settings
// match those the stream uses on the source, so values in text form
// round-trip exactly.
//
// enable_seqscan = off makes every UPDATE and DELETE find its row through
// the key's index, as native apply always does (it looks rows up by the
// replica identity index). Left to the planner, a small table - a few
// pages by its statistics - is scanned whole for each row, and one batch
// of source transactions that updates the same rows again and again makes
// it ever longer: the versions the open target transaction made cannot be
// pruned before it commits. Statements without an indexable
// condition (REPLICA IDENTITY FULL) have no other plan and still scan.
// The planner marks a plan it had to scan with a huge cost, and JIT
// compiles every plan above jit_above_cost: jit = off keeps those
// one-row statements from being compiled, at tens of milliseconds each.
// JIT never pays off for statements that touch one row.
const sessionSettings = `SET session_replication_role = replica;
SET default_transaction_read_only = off;
SET synchronous_commit = on;
SET enable_seqscan = off;
SET jit = off;
SET DateStyle = ISO;
SET IntervalStyle = postgres;
SET extra_float_digits = 3`

// PrepareSession applies pglink's target session settings to conn.
func PrepareSession(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.PgConn().Exec(ctx, sessionSettings).ReadAll(); err != nil {
		return fmt.Errorf("prepare target session: %w", err)
	}
	return nil
}
