package stream

import (
	"time"

	"github.com/pglink/pglink/internal/change"
)

// pendingKeep bounds the source commits kept for OldestPending: past it,
// neighbours are merged (the older one's time, the newer one's end), so
// through a long backlog the answer is older than the truth by at most
// the span of one merged entry.
const pendingKeep = 256

// pendingTxn is a span of source transactions sent on out: the commit
// time of its first, and the end of its last.
type pendingTxn struct {
	end change.LSN
	at  time.Time
}

// notePending records a transaction sent on out, and forgets those the
// target has durably applied; the Streamer's lock is held.
func (s *Streamer) notePending(end change.LSN, at time.Time) {
	applied := change.LSN(s.applied.Load())
	i := 0
	for i < len(s.pending) && s.pending[i].end <= applied {
		i++
	}
	s.pending = append(s.pending[:0], s.pending[i:]...)
	if end <= applied {
		return
	}
	if len(s.pending) >= pendingKeep {
		merged := s.pending[:0]
		for j := 0; j < len(s.pending); j += 2 {
			p := s.pending[j]
			if j+1 < len(s.pending) {
				p.end = s.pending[j+1].end
			}
			merged = append(merged, p)
		}
		s.pending = merged
	}
	s.pending = append(s.pending, pendingTxn{end: end, at: at})
}

// OldestPending returns the source commit time of the oldest transaction
// sent on out that ends after applied (the position the target has
// applied), and false when every one sent ends at or before it. Its age
// is how far the target is behind the source.
func (s *Streamer) OldestPending(applied change.LSN) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pending {
		if p.end > applied {
			return p.at, true
		}
	}
	return time.Time{}, false
}
