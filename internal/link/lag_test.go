package link

import (
	"testing"
	"time"

	"github.com/pglink/pglink/internal/apply"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/stream"
)

// A link under one write a second whose last transaction is on its way
// is 20 ms behind, not the second since the transaction before it.
func TestLagSecondsIsTheOldestPendingAge(t *testing.T) {
	now := time.Now()
	applied := apply.Stats{LastEndLSN: 100, LastCommitTime: now.Add(-time.Second)}
	received := stream.Stats{ReceivedLSN: 150, LastMessage: now}
	pending := func(at time.Time) func(change.LSN) (time.Time, bool) {
		return func(a change.LSN) (time.Time, bool) { return at, a < 150 }
	}
	if got := lagSeconds(applied, received, pending(now.Add(-20*time.Millisecond)), now); got < 0.019 || got > 0.021 {
		t.Fatalf("lag %.3f s, want 0.020", got)
	}
	// Applied: caught up.
	applied.LastEndLSN = 150
	if got := lagSeconds(applied, received, pending(now), now); got != 0 {
		t.Fatalf("caught up, lag %.3f s", got)
	}
	// A stream gone quiet is not caught up: the last commit's age.
	received.LastMessage = now.Add(-time.Hour)
	if got := lagSeconds(applied, received, pending(now), now); got < 0.99 {
		t.Fatalf("a quiet stream shows lag %.3f s", got)
	}
}
