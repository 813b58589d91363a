package link

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/apply"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/stream"
)

// Live keeps a running link's numbers for readers in the same process
// (the metrics at scrape time, later the dashboard). The runner hands it
// the parts it runs, and Snapshot reads their own counters when asked, so
// the data path pays nothing for it. Safe for concurrent use.
type Live struct {
	mu             sync.Mutex
	name           string
	state          string
	source, target string
	// The running replication session, nil between sessions.
	applier   *apply.Applier
	streamer  *stream.Streamer
	startLSN  change.LSN
	heartbeat func() change.LSN
	ended     apply.Stats // sums of the sessions that ended
	// Seeding: rows and bytes per table part of this process's copy, and
	// what earlier copies (or processes) had copied.
	seedParts               map[string]partProgress
	seedRows, seedBytes     int64
	tablesLeft              int
	retained                *int64
	walWarn                 int64
	streamFormat            string
	reconnects, errorsCount int64
	lastError               string
}

// NewLive returns the live view of link name, in state "starting".
func NewLive(name string) *Live {
	return &Live{name: name, state: report.LiveStarting, seedParts: map[string]partProgress{}}
}

// SetState sets the state shown (a state.Phase or a report.Live* state).
func (l *Live) SetState(s string) {
	l.mu.Lock()
	l.state = s
	l.mu.Unlock()
}

// SetEndpoints sets the source and target as described without secrets.
func (l *Live) SetEndpoints(source, target string) {
	l.mu.Lock()
	l.source, l.target = source, target
	l.mu.Unlock()
}

// SetStreamFormat sets the format ("binary" or "text") in which the
// replication session that starts receives values.
func (l *Live) SetStreamFormat(f string) {
	l.mu.Lock()
	l.streamFormat = f
	l.mu.Unlock()
}

// NoteError counts an error that stopped the link's work, and a
// reconnection when the work is tried again.
func (l *Live) NoteError(err error, reconnect bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errorsCount++
	if reconnect {
		l.reconnects++
	}
	if err != nil {
		l.lastError = err.Error()
	}
}

// Snapshot returns the link's numbers now.
func (l *Live) Snapshot() report.Live {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := report.Live{Name: l.name, State: l.state, Source: l.source, Target: l.target,
		SeedTablesLeft: l.tablesLeft, WALWarnBytes: l.walWarn, Reconnects: l.reconnects, Errors: l.errorsCount,
		LastError: l.lastError, SeedRowsCopied: l.seedRows, SeedBytesCopied: l.seedBytes}
	if l.applier != nil {
		out.StreamFormat = l.streamFormat
	}
	for _, p := range l.seedParts {
		out.SeedRowsCopied += p.Rows
		out.SeedBytesCopied += p.Bytes
	}
	out.SeedTables = seedTables(l.seedParts)
	if l.retained != nil {
		r := *l.retained
		out.SlotRetainedBytes = &r
		out.WALWarning = report.WALWarning(state.NamesFor(l.name).Slot, r, l.walWarn)
	}
	st := l.ended
	if l.applier != nil {
		st = addStats(st, l.applier.Stats())
		l.lag(&out, st)
	}
	out.AppliedTxns, out.AppliedBatches, out.LastAppliedAt = st.Txns, st.Batches, st.LastAppliedAt
	out.AppliedRows = map[string]int64{"insert": st.Inserts, "update": st.Updates, "delete": st.Deletes, "truncate": st.Truncates}
	return out
}

// lag fills the lag of the running session: in bytes, the source's last
// known WAL position (heartbeat or the stream's keepalive) past the
// applied one; in seconds, as the status report measures it (see
// lagSeconds), at the moment of the call.
func (l *Live) lag(out *report.Live, st apply.Stats) {
	ss := l.streamer.Stats()
	src := max(ss.ServerWALEnd, ss.ReceivedLSN)
	if l.heartbeat != nil {
		src = max(src, l.heartbeat())
	}
	applied := max(st.LastEndLSN, l.startLSN)
	if src != 0 && applied != 0 {
		b := int64(0)
		if src > applied {
			b = int64(src - applied)
		}
		out.LagBytes = &b
	}
	if !ss.LastMessage.IsZero() {
		s := lagSeconds(st, ss, l.streamer.OldestPending, time.Now())
		out.LagSeconds = &s
	}
}

// addStats adds the counters of b to a; the positions and times are b's
// when it has any.
func addStats(a, b apply.Stats) apply.Stats {
	a.Txns += b.Txns
	a.Batches += b.Batches
	a.Changes += b.Changes
	a.Inserts += b.Inserts
	a.Updates += b.Updates
	a.Deletes += b.Deletes
	a.Truncates += b.Truncates
	if !b.LastAppliedAt.IsZero() {
		a.LastEndLSN, a.LastCommitTime, a.LastAppliedAt = b.LastEndLSN, b.LastCommitTime, b.LastAppliedAt
	}
	return a
}

// session registers the replication session that starts; the returned
// function ends it, keeping its counters.
func (l *Live) session(a *apply.Applier, s *stream.Streamer, start change.LSN, heartbeat func() change.LSN) (end func()) {
	l.mu.Lock()
	l.applier, l.streamer, l.startLSN, l.heartbeat = a, s, start, heartbeat
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		l.ended = addStats(l.ended, a.Stats())
		l.applier, l.streamer = nil, nil
		l.mu.Unlock()
	}
}

// seedTodo starts a copy of n tables, after rows and bytes copied before.
func (l *Live) seedTodo(n int, rows, bytes int64) {
	l.mu.Lock()
	l.tablesLeft, l.seedRows, l.seedBytes = n, rows, bytes
	clear(l.seedParts)
	l.mu.Unlock()
}

// copyProgress takes one copy job's report.
func (l *Live) copyProgress(cp report.CopyProgress) {
	l.mu.Lock()
	l.seedParts[cp.Table+"\x00"+cp.Part] = partProgress{table: cp.Table, CopyProgress: cp}
	l.mu.Unlock()
}

func (l *Live) tableDone() {
	l.mu.Lock()
	l.tablesLeft = max(0, l.tablesLeft-1)
	l.mu.Unlock()
}

// slot records the WAL the link's slot retains and the guard's threshold.
func (l *Live) slot(retained, threshold int64) {
	l.mu.Lock()
	l.retained, l.walWarn = &retained, threshold
	l.mu.Unlock()
}

// partProgress is the last report of one table part's copy.
type partProgress struct {
	table string
	report.CopyProgress
}

// seedTables sums the parts' reports by table: rows, bytes, and the rate
// of the parts still copying.
func seedTables(parts map[string]partProgress) []report.LiveTable {
	byName := map[string]*report.LiveTable{}
	var out []report.LiveTable
	for _, p := range parts {
		t := byName[p.table]
		if t == nil {
			t = &report.LiveTable{Name: p.table, Done: true}
			byName[p.table] = t
		}
		t.Rows += p.Rows
		t.Bytes += p.Bytes
		if !p.Done {
			t.Done = false
			if p.Elapsed > 0 {
				t.BytesPerSec += float64(p.Bytes) / p.Elapsed.Seconds()
			}
		}
	}
	for _, t := range byName {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b report.LiveTable) int { return strings.Compare(a.Name, b.Name) })
	return out
}
