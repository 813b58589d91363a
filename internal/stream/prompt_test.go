package stream

import (
	"fmt"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/change"
)

// replicationLSN reads one position of slot's walsender in pg_stat_replication.
func (s *source) replicationLSN(slot, column string) change.LSN {
	return s.lsnOf(fmt.Sprintf("SELECT %s FROM pg_stat_replication WHERE pid = (SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1)", column), slot)
}

// TestStatusFollowsApplied checks that the slot follows SetApplied without
// waiting for the status timer, and never passes it. The timer is an hour
// and the server never asks for a reply (wal_sender_timeout an hour too),
// so after the first status only SetApplied can move the slot.
func TestStatusFollowsApplied(t *testing.T) {
	t.Parallel()
	src := newSourceWith(t, map[string]string{"wal_sender_timeout": "1h"}, "CREATE TABLE t (id int PRIMARY KEY)")
	src.createSlot("prompt")
	r := src.stream("prompt", 0, func(o *Options) { o.StatusInterval = time.Hour })

	src.Exec(srcDB, "INSERT INTO t VALUES (1)")
	_, c1 := r.txn(t)
	r.SetApplied(c1.EndLSN)
	waitFor(t, "the slot to confirm the applied transaction", func() bool { return src.confirmedFlush("prompt") >= c1.EndLSN })

	// One sent and applied, one sent and not: the slot stops at the first,
	// while the write position shows what pglink has received.
	src.Exec(srcDB, "INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (3)")
	_, c2 := r.txn(t)
	_, c3 := r.txn(t)
	r.SetApplied(c2.EndLSN)
	waitFor(t, "the slot to confirm the second transaction", func() bool { return src.confirmedFlush("prompt") >= c2.EndLSN })
	waitFor(t, "the write position to show the third", func() bool { return src.replicationLSN("prompt", "write_lsn") >= c3.EndLSN })
	if got := src.confirmedFlush("prompt"); got != c2.EndLSN {
		t.Errorf("confirmed_flush_lsn %s, want %s: the third transaction is not applied", got, c2.EndLSN)
	}
	if got := src.replicationLSN("prompt", "flush_lsn"); got != c2.EndLSN {
		t.Errorf("reported flush %s, want %s", got, c2.EndLSN)
	}
	if got := src.replicationLSN("prompt", "replay_lsn"); got != c2.EndLSN {
		t.Errorf("reported apply %s, want %s", got, c2.EndLSN)
	}

	// A steady stream of commits, each applied as it arrives: the slot
	// follows every one of them.
	r.SetApplied(c3.EndLSN)
	for i := 10; i < 60; i++ {
		src.Exec(srcDB, fmt.Sprintf("INSERT INTO t VALUES (%d)", i))
		_, c := r.txn(t)
		r.SetApplied(c.EndLSN)
		waitFor(t, "the slot to confirm transaction "+fmt.Sprint(i), func() bool { return src.confirmedFlush("prompt") >= c.EndLSN })
	}
}
