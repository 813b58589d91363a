package stream

import (
	"testing"
	"time"

	"github.com/pglink/pglink/internal/change"
)

// The oldest transaction not applied is the one whose age is the lag:
// not the last one applied, and not one the target already has.
func TestOldestPending(t *testing.T) {
	s := New(Options{StartLSN: 100})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	s.notePending(90, at(0)) // before the start: applied already
	for i := 1; i <= 3; i++ {
		s.notePending(change.LSN(100+10*i), at(i))
	}
	if got, ok := s.OldestPending(100); !ok || !got.Equal(at(1)) {
		t.Fatalf("nothing applied since the start: oldest %v %v, want %v", got, ok, at(1))
	}
	if got, ok := s.OldestPending(110); !ok || !got.Equal(at(2)) {
		t.Fatalf("the first applied: oldest %v %v, want %v", got, ok, at(2))
	}
	if _, ok := s.OldestPending(130); ok {
		t.Fatal("everything applied, yet a transaction pending")
	}
	s.SetApplied(120)
	s.notePending(140, at(4))
	if len(s.pending) != 2 {
		t.Fatalf("the durably applied ones are kept: %v", s.pending)
	}
	// A backlog longer than pendingKeep: bounded, and never younger than
	// the truth.
	for i := 0; i < 10*pendingKeep; i++ {
		s.notePending(change.LSN(1000+i), at(100+i))
	}
	if len(s.pending) > pendingKeep {
		t.Fatalf("%d kept, more than %d", len(s.pending), pendingKeep)
	}
	for _, applied := range []change.LSN{130, 1500, 3000, 1000 + 10*pendingKeep - 2} {
		truth := at(100 + int(applied) - 1000 + 1)
		if applied < 1000 {
			truth = at(3)
		}
		got, ok := s.OldestPending(applied)
		if !ok || got.After(truth) {
			t.Fatalf("applied %d: oldest %v %v, the truth is %v", applied, got, ok, truth)
		}
	}
}
