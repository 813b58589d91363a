package link

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/state"
)

// slotLost returns the error that ends a link whose replication slot the
// source has invalidated, or nil when the slot is usable or cannot be
// read (the source is away: the caller retries). An invalidated slot has
// lost WAL the link had not applied: no retry can bring it back.
func (r *runner) slotLost(ctx context.Context) error {
	if r.srcConn == nil || r.srcConn.IsClosed() {
		return nil
	}
	var status string
	err := state.ControlQuery(ctx, endpoint.Source, "the slot's state", func(ctx context.Context) (err error) {
		status, err = SlotWALStatus(ctx, r.srcConn, r.names.Slot)
		return err
	})
	if err != nil || status != "lost" {
		return nil
	}
	return SlotLostError(r.cfg.Name, r.names.Slot)
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
