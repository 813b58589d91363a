package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SaveFailoverRecord keeps record (JSON) as link's last failover run from
// pglink serve, in pglink.failover_records on the target. The record is
// the dashboard's; it outlives the process that ran the failover, and the
// link itself (a failover may drop it).
func SaveFailoverRecord(ctx context.Context, conn *pgx.Conn, link string, record []byte) error {
	_, err := conn.Exec(ctx, `INSERT INTO pglink.failover_records (link, record) VALUES ($1, $2::text::jsonb)
		ON CONFLICT (link) DO UPDATE SET record = excluded.record, updated_at = now()`, link, string(record))
	if err != nil {
		return fmt.Errorf("target: record the failover of link %s: %w", link, err)
	}
	return nil
}

// LoadFailoverRecord returns link's last failover record (JSON), or nil
// when there is none (also when the target has no such table yet: its
// links were made by an older pglink and no failover was recorded).
func LoadFailoverRecord(ctx context.Context, conn *pgx.Conn, link string) ([]byte, error) {
	var record string
	err := conn.QueryRow(ctx, `SELECT record::text FROM pglink.failover_records WHERE link = $1`, link).Scan(&record)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000"):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("target: read the last failover of link %s: %w", link, err)
	}
	return []byte(record), nil
}
