package link

import (
	"context"

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
		status, err = state.SlotWALStatus(ctx, r.srcConn, r.names.Slot)
		return err
	})
	if err != nil || status != "lost" {
		return nil
	}
	return state.SlotLostError(r.cfg.Name, r.names.Slot)
}
