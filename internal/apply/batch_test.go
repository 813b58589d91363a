package apply

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

func testBacklog(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	r := rel("public", "t", change.IdentityDefault, "id*", "v")
	// No batch delay limit here: a slow machine would cut batches short.
	a := e.mustRun(t, Options{MaxBatchDelay: time.Hour}, insertTxns(r, 0x10000, 1, 5000)...)
	st := a.Stats()
	// 1000 source transactions per target transaction at most.
	if st.Txns != 5000 || st.Batches != 5 {
		t.Errorf("stats = %+v, want 5000 txns in 5 batches", st)
	}
	e.expect(t, `SELECT count(*) FROM t`, "5000")
	e.conn = e.session(t)
	a = e.mustRun(t, Options{MaxBatchTxns: 7, MaxBatchDelay: time.Hour}, insertTxns(r, 0x1000000, 10001, 700)...)
	if st := a.Stats(); st.Txns != 700 || st.Batches != 100 {
		t.Errorf("stats = %+v, want 700 txns in 100 batches", st)
	}
}

// testTrickle feeds one source transaction at a time, the next only once
// the previous is durable: each one commits at once (low lag).
func testTrickle(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	r := rel("public", "t", change.IdentityDefault, "id*", "v")
	applied := make(chan change.LSN, 1)
	a := New(Options{Conn: e.conn, Origin: e.db, OnApplied: func(lsn change.LSN) { applied <- lsn }})
	in := make(chan *change.Change)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends Run when the test fails early
	go func() { done <- a.Run(ctx, in) }()
	for _, tx := range insertTxns(r, 0x1000, 1, 20) {
		for _, ch := range tx {
			in <- ch
		}
		select {
		case lsn := <-applied:
			if lsn != tx[len(tx)-1].EndLSN {
				t.Fatalf("OnApplied(%s), want %s", lsn, tx[len(tx)-1].EndLSN)
			}
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("a caught-up transaction was not committed")
		}
	}
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Txns != 20 || st.Batches != 20 {
		t.Errorf("stats = %+v, want 20 txns in 20 batches", st)
	}
}

// testSourceAhead feeds transactions one at a time, the input empty after
// each, while the source is known to have more (Options.SourceAhead):
// they go in one batch, committed once the input passes that position,
// and a wait for more never holds a batch past MaxBatchDelay.
func testSourceAhead(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	r := rel("public", "t", change.IdentityDefault, "id*", "v")
	txns := insertTxns(r, 0x1000, 1, 20)
	last := txns[len(txns)-1]
	// A heartbeat inside the last transaction: every commit before it is
	// followed by more, the last one is not.
	var ahead atomic.Uint64
	ahead.Store(uint64(last[0].CommitLSN))
	applied := make(chan change.LSN, 10)
	const delay = 2 * time.Second
	a := New(Options{Conn: e.conn, Origin: e.db, MaxBatchDelay: delay,
		SourceAhead: func() change.LSN { return change.LSN(ahead.Load()) },
		OnApplied:   func(lsn change.LSN) { applied <- lsn }})
	in := make(chan *change.Change)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends Run when the test fails early
	go func() { done <- a.Run(ctx, in) }()
	wantApplied := func(want change.LSN, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		select {
		case lsn := <-applied:
			if lsn != want {
				t.Fatalf("OnApplied(%s), want %s", lsn, want)
			}
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-time.After(within):
			t.Fatalf("nothing applied within %s", within)
		}
		return time.Since(start)
	}
	for _, tx := range txns[:len(txns)-1] {
		for _, ch := range tx {
			in <- ch
		}
		time.Sleep(5 * time.Millisecond) // the input is empty at each commit
		select {
		case lsn := <-applied:
			t.Fatalf("OnApplied(%s) with more to come from the source", lsn)
		default:
		}
	}
	for _, ch := range last {
		in <- ch
	}
	wantApplied(last[len(last)-1].EndLSN, 30*time.Second)
	if st := a.Stats(); st.Txns != 20 || st.Batches != 1 {
		t.Errorf("stats = %+v, want 20 txns in 1 batch", st)
	}

	// The source is ahead, but nothing more comes: the batch still
	// commits, within MaxBatchDelay.
	ahead.Store(0x100000)
	more := insertTxns(r, 0x10000, 21, 1)[0]
	for _, ch := range more {
		in <- ch
	}
	if took := wantApplied(more[len(more)-1].EndLSN, 30*time.Second); took > delay+time.Second {
		t.Errorf("a batch waited %s for more input, want at most MaxBatchDelay (%s)", took, delay)
	}
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.expect(t, `SELECT count(*) FROM t`, "21")
}

func testMaxBatchDelay(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	r := rel("public", "t", change.IdentityDefault, "id*", "v")
	// A delay this short has always passed at the next source commit.
	a := e.mustRun(t, Options{MaxBatchDelay: time.Nanosecond}, insertTxns(r, 0x1000, 1, 50)...)
	if st := a.Stats(); st.Txns != 50 || st.Batches != 50 {
		t.Errorf("stats = %+v, want 50 txns in 50 batches", st)
	}
}

// testHugeTransaction applies one source transaction of 200,000 rows of
// 500 bytes (100 MB of values) and checks the heap stays well below it:
// statements go out as they come.
func testHugeTransaction(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE UNLOGGED TABLE t (id int PRIMARY KEY, v text)`)
	r := rel("public", "t", change.IdentityDefault, "id*", "v")
	const rows, limit = 200_000, 100 << 20
	in := make(chan *change.Change, 1000)
	a := New(Options{Conn: e.conn, Origin: e.db})
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background(), in) }()
	runtime.GC()
	var peak uint64
	var ms runtime.MemStats
	pad := strings.Repeat("x", 490)
	lsn := change.LSN(0x1000)
	send := func(ch *change.Change) {
		select {
		case in <- ch:
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		}
	}
	send(&change.Change{Kind: change.Begin, CommitLSN: lsn, CommitTime: baseTime})
	for i := range rows {
		ch := ins(r, fmt.Sprint(i), pad+fmt.Sprintf("%010d", i)) // a fresh value each row
		ch.CommitLSN = lsn
		send(ch)
		if i%10_000 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	send(&change.Change{Kind: change.Commit, CommitLSN: lsn, EndLSN: lsn + 0x10, CommitTime: baseTime})
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if peak > limit {
		t.Errorf("heap in use peaked at %d MB, want under %d MB", peak>>20, limit>>20)
	}
	t.Logf("heap in use peaked at %d MB", peak>>20)
	e.expect(t, `SELECT count(*) FROM t`, fmt.Sprint(rows))
	if st := a.Stats(); st.Batches != 1 || st.Changes != rows {
		t.Errorf("stats = %+v, want 1 batch of %d changes", st, rows)
	}
}

// BenchmarkApplyInsertTxns applies b.N one-row source transactions from a
// backlog, the common shape of OLTP replication.
func BenchmarkApplyInsertTxns(b *testing.B) {
	c := pgtest.Start(b, pgtest.Options{})
	c.CreateDB("bench")
	c.Exec("bench", `CREATE TABLE t (id int PRIMARY KEY, v text, n numeric, at timestamptz)`)
	e := &env{c: c, db: "bench"}
	e.conn = e.session(b)
	r := rel("public", "t", change.IdentityDefault, "id*", "v", "n", "at")
	var txns [][]*change.Change
	for i := range b.N {
		txns = append(txns, txn(change.LSN(0x1000+i*0x100), ins(r, fmt.Sprint(i), "some text value", "12.50", "2024-02-29 12:00:00+00")))
	}
	b.ResetTimer()
	a := e.mustRun(b, Options{}, txns...)
	b.StopTimer()
	if st := a.Stats(); st.Txns != int64(b.N) {
		b.Fatalf("applied %d txns, want %d", st.Txns, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txn/s")
}

// testDurableCommits: through a backlog, batches commit without waiting
// for their WAL flush, and only the durable ones are reported to
// OnApplied: the first (no durable commit yet), any after DurableEvery,
// and the last (the input drained), which makes all before it durable.
func testDurableCommits(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	r := rel("public", "t", change.IdentityDefault, "id*", "v")
	var applied []change.LSN
	txns := insertTxns(r, 0x10000, 1, 700)
	batchEnd := func(i int) change.LSN { return txns[i][len(txns[i])-1].EndLSN }
	opts := Options{MaxBatchTxns: 100, MaxBatchDelay: time.Hour, DurableEvery: time.Hour,
		OnApplied: func(lsn change.LSN) { applied = append(applied, lsn) }}
	a := e.mustRun(t, opts, txns...)
	if st := a.Stats(); st.Txns != 700 || st.Batches != 7 || st.LastEndLSN != batchEnd(699) {
		t.Errorf("stats = %+v, want 700 txns in 7 batches", st)
	}
	if got, want := fmt.Sprint(applied), fmt.Sprint([]change.LSN{batchEnd(99), batchEnd(699)}); got != want {
		t.Errorf("OnApplied(%s), want only the durable %s", got, want)
	}
	e.expect(t, `SELECT count(*) FROM t`, "700")
	if got := e.originLSN(t); got != batchEnd(699) {
		t.Errorf("durable origin progress = %s, want %s", got, batchEnd(699))
	}

	// With a durable commit at least every nanosecond, every batch is one.
	applied = nil
	e.conn = e.session(t)
	opts.DurableEvery = time.Nanosecond
	e.mustRun(t, opts, insertTxns(r, 0x1000000, 1001, 300)...)
	if len(applied) != 3 {
		t.Errorf("OnApplied called %d times, want 3 (every batch durable)", len(applied))
	}
}
