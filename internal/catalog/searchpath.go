package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// FixedSearchPath is the search path under which pglink names types and
// renders values that depend on it (regclass and the like). With only
// pg_catalog visible, format_type qualifies every other type with its
// schema, so a type is named the same on every server whatever the
// session's search path: a database's own (ALTER DATABASE ... SET
// search_path) would otherwise name one enum "state" on one side and
// "abc.state" on the other.
const FixedSearchPath = "pg_catalog"

// withFixedSearchPath runs f with search_path set to FixedSearchPath for
// the current transaction only, so the session's own setting is never
// lost: in a transaction of its own when the session is idle, else (the
// caller reads in a snapshot) set and set back around f.
func withFixedSearchPath(ctx context.Context, conn *pgx.Conn, f func() error) error {
	const set = `SELECT current_setting('search_path'), set_config('search_path', $1, true)`
	if conn.PgConn().TxStatus() == 'I' {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, set, FixedSearchPath); err != nil {
				return fmt.Errorf("set search_path: %w", err)
			}
			return f()
		})
	}
	var old string
	if err := conn.QueryRow(ctx, set, FixedSearchPath).Scan(&old, nil); err != nil {
		return fmt.Errorf("set search_path: %w", err)
	}
	err := f()
	if _, rerr := conn.Exec(ctx, `SELECT set_config('search_path', $1, true)`, old); rerr != nil {
		err = errors.Join(err, fmt.Errorf("set search_path back: %w", rerr))
	}
	return err
}
