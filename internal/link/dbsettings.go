package link

import (
	"context"
	"fmt"
	"strings"

	"github.com/pglink/pglink/internal/seed"
	"github.com/pglink/pglink/internal/state"
)

// carrySettings gives the target database the source database's settings
// (seed.CarrySettings), once the data and indexes are in: the seeding's
// own sessions never run under them. What was set, kept, skipped or
// refused is logged and recorded in pglink.history (event
// database_settings); a refused setting does not stop the seeding.
func (r *runner) carrySettings(ctx context.Context) error {
	rep, err := seed.CarrySettings(ctx, r.schemaOptions())
	if err != nil {
		return fmt.Errorf("carry the database's settings: %w", err)
	}
	parts := []struct {
		label string
		items []string
	}{
		{"set", rep.Set}, {"kept the target's own", rep.Kept}, {"skipped", rep.Skipped}, {"refused by the target", rep.Failed},
	}
	var detail []string
	for _, p := range parts {
		if len(p.items) > 0 {
			detail = append(detail, p.label+": "+strings.Join(p.items, "; "))
		}
	}
	if len(detail) == 0 {
		return nil
	}
	msg := strings.Join(detail, ". ")
	if len(rep.Failed) > 0 || len(rep.Skipped) > 0 {
		r.log.Warn("database settings carried to the target, not all of them", "settings", msg)
	} else {
		r.log.Info("database settings carried to the target", "settings", msg)
	}
	if err := state.AddHistory(ctx, r.tgtConn, r.cfg.Name, state.EventDatabaseSettings, msg); err != nil {
		return err
	}
	if len(rep.MissingRoles) > 0 {
		missing := "roles missing on the target; their settings in this database were not carried: " + strings.Join(rep.MissingRoles, ", ")
		r.log.Warn(missing)
		return state.AddHistory(ctx, r.tgtConn, r.cfg.Name, state.EventMissingRoles, missing)
	}
	return nil
}
