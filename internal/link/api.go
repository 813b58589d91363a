package link

import (
	"log/slog"

	"github.com/pglink/pglink/internal/report"
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
	Jobs          int // parallel copy jobs; 0: number of CPUs
	// ApplySessions is how many target sessions the apply uses: 2 (the
	// default, 0) or 1. Each takes one of the target's replication origin
	// entries (max_replication_slots), which many links into one target
	// may need more than the speed.
	ApplySessions int
	Schema        string // SchemaCopy (default) or SchemaExisting
	// DDL is what the link does with the source's schema changes:
	// state.DDLReplicate (the default for a new link), DDLStop or
	// DDLIgnore. Empty on a link that exists keeps its mode.
	DDL string
	// Binary is BinaryAuto or BinaryOff (the default, also when empty): whether a
	// replication session may ask for values in binary form (see
	// runner.streamFormat).
	Binary string
	// TruncateExisting lets a new link with SchemaExisting empty target
	// tables that hold rows (it refuses them otherwise).
	TruncateExisting bool
	// WALWarnBytes is the WAL guard's threshold: the log and the live
	// view warn when the link's slot retains more. 0: half of the
	// source's max_slot_wal_keep_size, or report.DefaultWALWarnBytes.
	WALWarnBytes int64
	Logger       *slog.Logger
	// Live, when set, receives the running link's numbers (see Live).
	Live *Live
	// Progress, when set, receives seeding progress reports (from several
	// goroutines: it must be safe for concurrent use).
	Progress func(report.CopyProgress)
}
