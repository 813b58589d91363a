package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/instance"
	"github.com/pglink/pglink/internal/wait"
)

// subscription is PostgreSQL's own logical replication of the same tables
// into another target database: a publication on the source and a
// subscription (with its slot, named after it) on the target, with the
// defaults a user gets from CREATE SUBSCRIPTION.
type subscription struct {
	name         string
	src, tgt     *instance.Instance
	srcDB, tgtDB string
}

func (s subscription) slot() string { return s.name }

// create copies the schema with pg_dump --schema-only, publishes tables on
// the source and subscribes with copy_data, then waits until every table
// is synchronised (state 'r').
func (s subscription) create(ctx context.Context, tables []string, timeout time.Duration) error {
	if err := createDB(ctx, s.tgt, s.tgtDB); err != nil {
		return err
	}
	if err := copySchema(ctx, s.src, s.srcDB, s.tgt, s.tgtDB); err != nil {
		return err
	}
	quoted := make([]string, len(tables))
	for i, t := range tables {
		quoted[i] = pgx.Identifier{t}.Sanitize()
	}
	name := pgx.Identifier{s.name}.Sanitize()
	if err := execSQL(ctx, s.src, s.srcDB, "CREATE PUBLICATION "+name+" FOR TABLE "+strings.Join(quoted, ", ")); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	sub := fmt.Sprintf("CREATE SUBSCRIPTION %s CONNECTION '%s' PUBLICATION %s", name, connInfo(s.src, s.srcDB), name)
	if err := execSQL(ctx, s.tgt, s.tgtDB, sub); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	return s.waitSynced(ctx, len(tables), timeout)
}

func (s subscription) waitSynced(ctx context.Context, tables int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := connect(ctx, s.tgt, s.tgtDB)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for {
		var ready int
		err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE r.srsubstate = 'r') FROM pg_subscription_rel r
			JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`, s.name).Scan(&ready)
		if err != nil {
			return fmt.Errorf("subscription %s: %w", s.name, err)
		}
		if ready == tables {
			return nil
		}
		if err := wait.Sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("subscription %s: %d of %d tables synchronised: %w", s.name, ready, tables, err)
		}
	}
}

// copySchema copies the schema of a database with pg_dump and psql.
func copySchema(ctx context.Context, src *instance.Instance, srcDB string, tgt *instance.Instance, tgtDB string) error {
	dir, err := os.MkdirTemp("", "pglink-bench-schema-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "schema.sql")
	bin, err := instance.BinDir()
	if err != nil {
		return err
	}
	args := append(hostArgs(src), "--schema-only", "--no-publications", "--no-subscriptions", "-f", file, srcDB)
	if out, err := run(ctx, nil, filepath.Join(bin, "pg_dump"), args...); err != nil {
		return fmt.Errorf("pg_dump --schema-only: %w\n%s", err, tail(out, 5))
	}
	args = append(hostArgs(tgt), "-q", "-v", "ON_ERROR_STOP=1", "-f", file, tgtDB)
	if out, err := run(ctx, nil, filepath.Join(bin, "psql"), args...); err != nil {
		return fmt.Errorf("psql: %w\n%s", err, tail(out, 5))
	}
	return nil
}

// enable starts the subscription's apply worker.
func (s subscription) enable(ctx context.Context) error {
	return execSQL(ctx, s.tgt, s.tgtDB, "ALTER SUBSCRIPTION "+pgx.Identifier{s.name}.Sanitize()+" ENABLE")
}

// disable stops the apply worker and waits until the source's slot is
// free again.
func (s subscription) disable(ctx context.Context) error {
	if err := execSQL(ctx, s.tgt, s.tgtDB, "ALTER SUBSCRIPTION "+pgx.Identifier{s.name}.Sanitize()+" DISABLE"); err != nil {
		return err
	}
	return waitSlotInactive(ctx, s.src, s.srcDB, s.slot(), time.Minute)
}

// originName is the replication origin the subscription's worker records
// its position in ("pg_" and the subscription's oid).
func (s subscription) originName(ctx context.Context) (string, error) {
	conn, err := connect(ctx, s.tgt, s.tgtDB)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var oid uint32
	if err := conn.QueryRow(ctx, `SELECT oid FROM pg_subscription WHERE subname = $1`, s.name).Scan(&oid); err != nil {
		return "", fmt.Errorf("subscription %s: %w", s.name, err)
	}
	return fmt.Sprintf("pg_%d", oid), nil
}

// drop removes the subscription (and with it the source's slot), the
// publication and the target database.
func (s subscription) drop(ctx context.Context) error {
	name := pgx.Identifier{s.name}.Sanitize()
	err := execSQL(ctx, s.tgt, s.tgtDB, "DROP SUBSCRIPTION IF EXISTS "+name)
	if err == nil {
		err = execSQL(ctx, s.src, s.srcDB, "DROP PUBLICATION IF EXISTS "+name)
	}
	if err == nil {
		err = dropDB(ctx, s.tgt, s.tgtDB)
	}
	return err
}

// waitSlotInactive waits until no WAL sender uses the slot: a new reader
// of the slot would otherwise be refused, and retry, within the time
// measured.
func waitSlotInactive(ctx context.Context, inst *instance.Instance, db, slot string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := connect(ctx, inst, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for {
		var active bool
		err := conn.QueryRow(ctx, `SELECT coalesce((SELECT active FROM pg_replication_slots WHERE slot_name = $1), false)`, slot).Scan(&active)
		if err != nil {
			return fmt.Errorf("slot %s: %w", slot, err)
		}
		if !active {
			return nil
		}
		if err := wait.Sleep(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("slot %s still in use: %w", slot, err)
		}
	}
}
