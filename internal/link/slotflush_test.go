package link

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
)

// lsnWriter commits small transactions on the source, as writer does, and
// remembers for each a source position at or past its commit record's end
// (the WAL insert position read after the commit returned).
type lsnWriter struct {
	mu   sync.Mutex
	done []committedAt
}

type committedAt struct {
	id    int64
	after change.LSN
}

func (w *lsnWriter) run(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for i := int64(1); ctx.Err() == nil; i++ {
		err := writeLedger(ctx, conn, i)
		var after string
		if err == nil {
			err = conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&after)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		w.mu.Lock()
		w.done = append(w.done, committedAt{i, state.ParseLSN(&after)})
		w.mu.Unlock()
		time.Sleep(2 * time.Millisecond) // a steady rate, so the link stays caught up
	}
	return nil
}

func (w *lsnWriter) committed() []committedAt {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.done)
}

// TestSlotFollowsTheTarget checks the position pglink reports to the
// source while it streams under a write workload: the slot follows the
// target's commits without the status timer (an hour here, and the server
// never asks for a reply), and it never passes what the target has
// committed, also while the apply is held by a lock on the target and the
// status timer runs.
func TestSlotFollowsTheTarget(t *testing.T) {
	saved := statusInterval
	statusInterval = time.Hour
	t.Cleanup(func() { statusInterval = saved })
	src := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_sender_timeout": "1h"}})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("bank")
	bankFixture(src, "bank", 10)
	l := startTestLink(t, Config{Name: "follow", Source: src.URL("bank"), Target: dst.URL("bank")})
	waitPhase(t, l, "replicating", 2*time.Minute)

	ctx, stopWrites := context.WithCancel(context.Background())
	defer stopWrites()
	w := &lsnWriter{}
	werr := make(chan error, 1)
	go func() { werr <- w.run(ctx, src.URL("bank")) }()
	srcConn, dstConn := src.Connect("bank"), dst.Connect("bank")

	// slotBehindTarget reads the slot, then the target: every transaction
	// that ended at or before the slot's confirmed position must be there.
	slotBehindTarget := func() change.LSN {
		t.Helper()
		var text string
		if err := srcConn.QueryRow(context.Background(), `SELECT confirmed_flush_lsn::text FROM pg_replication_slots
			WHERE slot_name = 'pglink_follow'`).Scan(&text); err != nil {
			t.Fatal(err)
		}
		confirmed := state.ParseLSN(&text)
		sent := w.committed()
		onTarget := map[int64]bool{}
		rows, err := dstConn.Query(context.Background(), `SELECT id FROM bank.ledger`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			onTarget[id] = true
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		for _, c := range sent {
			if c.after <= confirmed && !onTarget[c.id] {
				t.Fatalf("the slot confirms %s, but the source transaction of ledger id %d (ended at or before %s) is not on the target",
					confirmed, c.id, c.after)
			}
		}
		return confirmed
	}
	writesPast := func(n int) change.LSN {
		t.Helper()
		waitFor(t, "more writes", time.Minute, l, func() (bool, error) {
			select {
			case err := <-werr:
				return false, err
			default:
			}
			return len(w.committed()) >= n, nil
		})
		c := w.committed()
		return c[len(c)-1].after
	}

	// Caught up: the slot follows the writes.
	mark := writesPast(200)
	waitFor(t, "the slot to follow the target's commits", time.Minute, l, func() (bool, error) {
		return slotBehindTarget() >= mark, nil
	})

	// Hold the apply: a lock on the target makes its next insert wait,
	// while the source goes on writing and the stream on receiving. The
	// link runs again with a short status timer, so that the source hears
	// from it while nothing commits on the target.
	if err := l.stop(); err != nil {
		t.Fatalf("stop the link: %v", err)
	}
	statusInterval = 20 * time.Millisecond
	l = startTestLink(t, l.cfg)
	writesPast(len(w.committed()) + 100)
	waitCaughtUp(t, l, src, "bank", time.Minute)
	hold, err := dst.Connect("bank").Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold.Exec(context.Background(), `LOCK TABLE bank.ledger IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	originAt := func() change.LSN {
		t.Helper()
		var text string
		if err := dstConn.QueryRow(context.Background(), `SELECT max(pg_replication_origin_progress(roname, true))::text FROM pg_replication_origin WHERE roname IN ('pglink_follow', 'pglink_follow.2')`).Scan(&text); err != nil {
			t.Fatal(err)
		}
		return state.ParseLSN(&text)
	}
	heldAt, originHeld := slotBehindTarget(), originAt()
	writesPast(len(w.committed()) + 200)
	for range 20 {
		slotBehindTarget()
		time.Sleep(50 * time.Millisecond)
	}
	// The slot never passes the origin: what the target has committed.
	if got := originAt(); got != originHeld {
		t.Fatalf("the target applied up to %s while held at %s: the hold did not hold", got, originHeld)
	}
	if got := slotBehindTarget(); got < heldAt || got > originHeld {
		t.Errorf("while the apply was held the slot confirmed %s: was %s, the target holds up to %s", got, heldAt, originHeld)
	}
	if err := hold.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Released: the apply catches up and the slot follows it again.
	mark = writesPast(len(w.committed()) + 100)
	waitFor(t, "the slot to follow again after the hold", time.Minute, l, func() (bool, error) {
		return slotBehindTarget() >= mark, nil
	})
	stopWrites()
	if err := <-werr; err != nil {
		t.Fatalf("writer: %v", err)
	}
	waitCaughtUp(t, l, src, "bank", time.Minute)
	assertSame(t, src, dst, "bank", "bank")
}

// TestFirstSessionConfirmsNothingUnapplied holds the first streaming
// session of a new link before its first commit on the target (a lock on
// the link's progress row, which every batch updates), lets the source
// write and the stream receive, and checks that the slot stays where it
// was made: with nothing applied yet, the status must not confirm what
// pglink has only received (a restart would then skip it). Then the link
// is stopped, released and started again, and every row arrives.
func TestFirstSessionConfirmsNothingUnapplied(t *testing.T) {
	saved := statusInterval
	statusInterval = 20 * time.Millisecond
	t.Cleanup(func() { statusInterval = saved })
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("bank")
	bankFixture(src, "bank", 200000) // seeding lasts long enough to take the lock first
	l := startTestLink(t, Config{Name: "first", Source: src.URL("bank"), Target: dst.URL("bank")})
	ctx := context.Background()

	var hold pgx.Tx
	waitFor(t, "the link's progress row", time.Minute, l, func() (bool, error) {
		conn, err := pgx.Connect(ctx, dst.URL("bank"))
		if err != nil {
			return false, nil // the link has not made the database yet
		}
		tx, err := conn.Begin(ctx)
		var phase string
		if err == nil {
			err = tx.QueryRow(ctx, `SELECT l.phase FROM pglink.links l JOIN pglink.progress p ON p.link = l.name
				WHERE l.name = 'first' FOR UPDATE OF p`).Scan(&phase)
		}
		if err != nil {
			conn.Close(ctx)
			return false, nil // not recorded yet
		}
		if phase != "seeding" {
			t.Fatalf("the link was %s before the test held its first commit: give the fixture more rows", phase)
		}
		hold = tx
		t.Cleanup(func() { conn.Close(ctx) })
		return true, nil
	})
	waitPhase(t, l, "replicating", 2*time.Minute)
	confirmed := func() change.LSN {
		return state.ParseLSN(ptr(src.QueryString("bank", `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'pglink_first'`)))
	}
	made := confirmed()

	for i := 1; i <= 50; i++ {
		src.Exec("bank", fmt.Sprintf(`INSERT INTO bank.ledger VALUES (%d, %d)`, i, i*3))
	}
	written := src.QueryString("bank", "pg_current_wal_insert_lsn()")
	waitFor(t, "the stream to receive the writes", time.Minute, l, func() (bool, error) {
		w := src.QueryString("bank", `SELECT coalesce(write_lsn::text, '0/0') FROM pg_stat_replication
			WHERE pid = (SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'pglink_first')`)
		return state.ParseLSN(&w) >= state.ParseLSN(&written), nil
	})
	time.Sleep(10 * statusInterval)
	if got := confirmed(); got != made {
		t.Fatalf("nothing is applied, but the slot confirms %s (made at %s, received up to %s)", got, made, written)
	}
	if n := dst.QueryString("bank", "SELECT count(*) FROM bank.ledger"); n != "0" {
		t.Fatalf("the hold did not hold: %s ledger rows on the target", n)
	}

	// Stopped before its first commit and started again, the link must
	// still get every row: the slot kept them.
	if err := l.stop(); err != nil {
		t.Fatalf("stop the link: %v", err)
	}
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	l = startTestLink(t, l.cfg)
	waitCaughtUp(t, l, src, "bank", time.Minute)
	assertSame(t, src, dst, "bank", "bank")
}

func ptr(s string) *string { return &s }
