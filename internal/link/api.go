package link

import (
	"context"
	"errors"
	"log/slog"

	"github.com/pglink/pglink/internal/monitor"
)

// Schema modes of Config.Schema.
const (
	SchemaCopy     = "copy"     // copy the schema with pg_dump; the target must not hold the tables
	SchemaExisting = "existing" // the target already holds the tables
)

// Config is what `pglink start` needs. Source and Target may hold
// passwords: they are never logged, printed or stored.
type Config struct {
	Name          string
	Source        string // libpq URL or key=value string
	Target        string
	Tables        []string // include patterns (schema.table or table, * allowed); empty: all
	ExcludeTables []string
	Jobs          int    // parallel copy jobs; 0: number of CPUs
	Schema        string // SchemaCopy (default) or SchemaExisting
	Logger        *slog.Logger
	// Progress, when set, receives seeding progress reports (from several
	// goroutines: it must be safe for concurrent use).
	Progress func(monitor.CopyProgress)
}

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
