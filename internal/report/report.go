// Package report holds what pglink reports about a link, as every reader
// sees it: the CLI's status command, its JSON output and later the
// dashboard share the one Status struct, so field names stay stable; the
// seeding's progress reports too.
package report

import (
	"time"

	"github.com/pglink/pglink/internal/state"
)

// Status is a link's state at one moment. The JSON names are an interface
// users script against: keep them.
type Status struct {
	Name        string      `json:"name"`
	Phase       state.Phase `json:"phase"`
	SourceLSN   string      `json:"source_lsn,omitempty"`  // source's current WAL position
	AppliedLSN  string      `json:"applied_lsn,omitempty"` // last source commit applied on the target
	LagBytes    *int64      `json:"lag_bytes"`
	LagSeconds  *float64    `json:"lag_seconds"`
	LastError   string      `json:"last_error,omitempty"`
	Remedy      string      `json:"remedy,omitempty"`
	Running     bool        `json:"running"` // a pglink process holds the link's lease
	Tables      []Table     `json:"tables"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
	LastApplied time.Time   `json:"last_applied_commit_time,omitzero"` // source commit time of the last applied transaction
	// Apply throughput, averaged over the last reporting interval of the
	// running process.
	ApplyTxnPerSec    float64  `json:"apply_txn_per_sec"`
	ApplyChangePerSec float64  `json:"apply_changes_per_sec"`
	SlotName          string   `json:"slot_name"`
	SlotActive        *bool    `json:"slot_active,omitempty"`
	SlotRetainedBytes *int64   `json:"slot_retained_bytes,omitempty"` // WAL the source keeps for the slot
	WALWarnBytes      int64    `json:"wal_warn_bytes,omitempty"`      // the WAL guard's threshold
	Warnings          []string `json:"warnings,omitempty"`
	// After a failover: whether the old source refuses writes, and whether
	// both sides take writes (split brain: fence the old source).
	SourceFenced *bool `json:"source_fenced,omitempty"`
	SplitBrain   bool  `json:"split_brain,omitempty"`
	// What the link does with the source's schema changes, and the last
	// ones it carried, skipped or left out, newest first.
	DDLMode string            `json:"ddl_mode,omitempty"`
	DDL     []state.DDLRecord `json:"ddl,omitempty"`
}

// Table is one table's seeding state.
type Table struct {
	Name        string           `json:"name"`  // schema.table
	State       state.TableState `json:"state"` // pending, copying, copied
	RowsCopied  int64            `json:"rows_copied"`
	BytesCopied int64            `json:"bytes_copied"`
	EstRows     int64            `json:"est_rows"`
	EstBytes    int64            `json:"est_bytes"`
	SyncLSN     string           `json:"sync_lsn,omitempty"`
	ETASeconds  *float64         `json:"eta_seconds,omitempty"`
}

// CopyProgress is one report of a seeding copy job, sent often while it
// copies a table (or a range of one) and once more when it is done.
type CopyProgress struct {
	Job      int           // 0-based job number
	Table    string        // schema.table
	Part     string        // the range being copied, empty for a whole table
	Rows     int64         // rows copied so far in this table part
	Bytes    int64         // bytes copied so far in this table part
	EstBytes int64         // estimated bytes of this table part (0 when unknown)
	Elapsed  time.Duration // since this part started
	Done     bool
}
