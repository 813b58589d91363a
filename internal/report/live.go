package report

import (
	"fmt"
	"time"
)

// Live is what a process that runs a link knows of it at one moment,
// read from memory without a round trip to either server: the metrics
// and the dashboard read the same struct. Pointers are nil when a value
// is not known (no replication session yet, source not read yet).
type Live struct {
	Name string `json:"name"`
	// State is the link's phase as this process sees it (state.Phase
	// values), or one of the process states below.
	State  string `json:"state"`
	Source string `json:"source"` // user@host:port/db, never a password
	Target string `json:"target"`

	LagBytes   *int64   `json:"lag_bytes"`
	LagSeconds *float64 `json:"lag_seconds"`

	AppliedTxns int64 `json:"applied_txns"`
	// AppliedBatches counts the target transactions the apply committed:
	// with AppliedTxns it gives the batch size.
	AppliedBatches int64            `json:"applied_batches"`
	AppliedRows    map[string]int64 `json:"applied_rows"` // by kind: insert, update, delete, truncate
	LastAppliedAt  time.Time        `json:"last_applied_at,omitzero"`

	SeedRowsCopied  int64 `json:"seed_rows_copied"`
	SeedBytesCopied int64 `json:"seed_bytes_copied"`
	SeedTablesLeft  int   `json:"seed_tables_left"`
	// SeedTables is this process's copy, by table (parts summed).
	SeedTables []LiveTable `json:"seed_tables,omitempty"`

	SlotRetainedBytes *int64 `json:"slot_retained_bytes"`
	WALWarnBytes      int64  `json:"wal_warn_bytes"` // the WAL guard's threshold
	WALWarning        string `json:"wal_warning,omitempty"`

	// StreamFormat is how the running replication session receives
	// values: "binary" or "text"; empty between sessions.
	StreamFormat string `json:"stream_format,omitempty"`

	Reconnects int64  `json:"reconnects"`
	Errors     int64  `json:"errors"`
	LastError  string `json:"last_error,omitempty"`
}

// LiveTable is one table's copy as this process's copy jobs report it.
type LiveTable struct {
	Name        string  `json:"name"` // schema.table
	Rows        int64   `json:"rows"`
	Bytes       int64   `json:"bytes"`
	BytesPerSec float64 `json:"bytes_per_sec"` // of its parts still copying
	Done        bool    `json:"done"`
}

// Process states of Live.State besides the link's phases.
const (
	LiveStarting = "starting" // connecting, taking the lease
	LiveStandby  = "standby"  // another process holds the link's lease; this one waits to take over
	LiveRetrying = "retrying" // the link stopped with an error and is started again after a backoff
	LiveEnded    = "ended"    // the link ended (failed over or dropped): nothing to run
)

// LiveStates lists every value of Live.State, in a fixed order.
var LiveStates = []string{LiveStarting, LiveStandby, LiveRetrying, "seeding", "replicating", "broken",
	"failing_over", "failed_over", LiveEnded}

// DefaultWALWarnBytes is the WAL guard's threshold when the source sets no
// max_slot_wal_keep_size.
const DefaultWALWarnBytes = 1 << 30

// WALWarnThreshold returns the retained WAL past which pglink warns:
// override when it is set (> 0), else half of the source's
// max_slot_wal_keep_size (in bytes, -1 when unlimited), else
// DefaultWALWarnBytes.
func WALWarnThreshold(keepSize, override int64) int64 {
	switch {
	case override > 0:
		return override
	case keepSize > 0:
		return keepSize / 2
	}
	return DefaultWALWarnBytes
}

// WALWarning says what to do when a slot retains more WAL than threshold,
// or returns "" when it does not.
func WALWarning(slot string, retained, threshold int64) string {
	if threshold <= 0 || retained <= threshold {
		return ""
	}
	return fmt.Sprintf("source: the replication slot %s retains %d MiB of WAL, more than the warning threshold of %d MiB: "+
		"the source's disk fills while the link falls behind or stands still; get the link streaming again (pglink status says why it is not), "+
		"or drop the link with pglink drop if it is given up (pglink never drops the slot by itself)", slot, retained>>20, threshold>>20)
}
