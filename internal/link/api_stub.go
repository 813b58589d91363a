//go:build !pglink_wip

package link

import (
	"context"
	"errors"
	"log/slog"

	"github.com/pglink/pglink/internal/monitor"
)

// Run creates the link or resumes it, then seeds and streams until ctx ends
// (a clean stop, returning nil) or a permanent error.
func Run(ctx context.Context, cfg Config) error {
	return errors.New("link: not built yet")
}

// Status reads a link's status from the target (and the source, when
// source is not empty).
func Status(ctx context.Context, name, target, source string) (*monitor.Status, error) {
	return nil, errors.New("link: not built yet")
}

// Drop removes what the link made on both sides: slot, publication, origin,
// its rows in the pglink schema (and the schema when no link remains), the
// read-only guard. The target's data stays.
func Drop(ctx context.Context, name, source, target string, log *slog.Logger) error {
	return errors.New("link: not built yet")
}
