package stream

import (
	"testing"
	"time"

	"github.com/pglink/pglink/internal/change"
)

// repliedAfter reports whether the walsender of slot "flush" got a standby status sent
// after t (reply_time is the client's send time).
func (s *source) repliedAfter(t time.Time) bool {
	return s.QueryString(srcDB, "SELECT coalesce(max(reply_time) > $1::timestamptz, false) FROM pg_stat_replication"+
		" WHERE pid = (SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'flush')", t) == "true"
}

// twoRepliesAfter waits until two standby status messages sent after now
// have arrived; the server has then fully processed the first one (it
// handles them in order, and records reply_time before it confirms).
func (s *source) twoRepliesAfter(t *testing.T) {
	t.Helper()
	t0 := time.Now()
	waitFor(t, "a standby status", func() bool { return s.repliedAfter(t0) })
	t1 := time.Now()
	waitFor(t, "another standby status", func() bool { return s.repliedAfter(t1) })
}

func TestFlushPositionOnTheSource(t *testing.T) {
	t.Parallel()
	src := newSource(t, "CREATE TABLE t (id int PRIMARY KEY)")
	src.CreateDB("other")
	src.Exec("other", "CREATE TABLE o (id int)")
	info := src.createSlot("flush")
	r := src.stream("flush", 0, nil)

	src.Exec(srcDB, "INSERT INTO t VALUES (1)")
	_, c1 := r.txn(t)
	src.Exec(srcDB, "INSERT INTO t VALUES (2)")
	_, c2 := r.txn(t)
	// Nothing is applied yet: the slot stays where it was made.
	if got := src.confirmedFlush("flush"); got != info.ConsistentPoint {
		t.Errorf("confirmed_flush_lsn %s before anything was applied (created at %s, first commit ends at %s)",
			got, info.ConsistentPoint, c1.EndLSN)
	}

	r.SetApplied(c1.EndLSN)
	waitFor(t, "the slot to confirm the first transaction", func() bool { return src.confirmedFlush("flush") >= c1.EndLSN })

	// WAL written in another database moves the server's WAL end; the
	// second transaction was sent but not applied, so nothing may pass it.
	src.Exec("other", "INSERT INTO o VALUES (1)")
	otherEnd := src.lsnOf("SELECT pg_current_wal_insert_lsn()")
	waitFor(t, "a keepalive past the other database's WAL", func() bool { return r.Stats().ServerWALEnd >= otherEnd })
	src.twoRepliesAfter(t)
	if got := src.confirmedFlush("flush"); got != c1.EndLSN {
		t.Errorf("with a transaction pending, confirmed_flush_lsn = %s, want %s", got, c1.EndLSN)
	}
	if got := src.lsnOf("SELECT flush_lsn FROM pg_stat_replication" +
		" WHERE pid = (SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'flush')"); got != c1.EndLSN {
		t.Errorf("reported flush %s, want %s", got, c1.EndLSN)
	}
	if got := r.Stats().FlushedLSN; got != c1.EndLSN {
		t.Errorf("Stats().FlushedLSN = %s, want %s", got, c1.EndLSN)
	}

	// Everything sent is applied and nothing is open: the slot follows
	// the target, and the server's WAL end from keepalives never moves it
	// further (the link's heartbeat moves an idle link's slot).
	r.SetApplied(c2.EndLSN)
	waitFor(t, "the slot to confirm the second transaction", func() bool { return src.confirmedFlush("flush") >= c2.EndLSN })
	src.Exec("other", "INSERT INTO o VALUES (2)")
	otherEnd = src.lsnOf("SELECT pg_current_wal_insert_lsn()")
	waitFor(t, "a keepalive past the other database's WAL", func() bool { return r.Stats().ServerWALEnd >= otherEnd })
	src.twoRepliesAfter(t)
	if got := src.confirmedFlush("flush"); got != c2.EndLSN {
		t.Errorf("idle, everything applied: confirmed_flush_lsn = %s, want %s (the last applied commit)", got, c2.EndLSN)
	}

	t.Run("status while the apply is slow", func(t *testing.T) {
		before := r.Stats()
		src.Exec(srcDB, "INSERT INTO t VALUES (3)")
		waitFor(t, "the next transaction to arrive", func() bool { return r.Stats().ReceivedLSN > before.ReceivedLSN })
		// Nobody reads out now: the streamer is stuck sending the Begin.
		src.twoRepliesAfter(t)
		src.twoRepliesAfter(t)
		if got := r.Stats(); got.Changes != before.Changes || got.Transactions != before.Transactions {
			t.Errorf("changes went out while nobody read: before %+v, after %+v", before, got)
		}
		body, _ := r.txn(t)
		if len(body) != 1 || body[0].Kind != change.Insert || string(body[0].New[0].Data) != "3" {
			t.Errorf("transaction after the stall: %v", kinds(body))
		}
	})
}
