package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

// insertTxns makes n one-row source transactions into r, ids from..from+n-1,
// committed 0x100 bytes apart from lsn on.
func insertTxns(r *change.Relation, lsn change.LSN, from, n int) [][]*change.Change {
	var out [][]*change.Change
	for i := range n {
		out = append(out, txn(lsn+change.LSN(i)*0x100, ins(r, fmt.Sprint(from+i), "v")))
	}
	return out
}

const progressSetup = `CREATE TABLE progress (lsn pg_lsn, at timestamptz, txns bigint, changes bigint);
	INSERT INTO progress VALUES (NULL, NULL, 0, 0)`

const progressSQL = `UPDATE progress SET lsn = $1::text::pg_lsn, at = $2, txns = txns + $3, changes = changes + $4`

func testExactlyOnce(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY, v text)`, progressSetup)
	r := rel("public", "t", change.IdentityDefault, "id*", "v")
	first := insertTxns(r, 0x10000, 1, 10)
	e.mustRun(t, Options{ProgressSQL: progressSQL}, first...)
	if got, want := e.originLSN(t), change.LSN(0x10000+9*0x100+0x10); got != want {
		t.Fatalf("origin progress = %s, want %s", got, want)
	}
	// A new session and Applier on the same origin, fed the same
	// transactions again and five more: nothing doubles (a doubled insert
	// would also fail on the primary key).
	e.conn = e.session(t)
	all := insertTxns(r, 0x10000, 1, 15)
	a := e.mustRun(t, Options{ProgressSQL: progressSQL}, all...)
	st := a.Stats()
	if st.Txns != 5 || st.SkippedTxns != 10 || st.Skipped != 10 {
		t.Errorf("stats = %+v, want 5 txns applied, 10 skipped", st)
	}
	e.expect(t, `SELECT format('%s %s %s', count(*), count(DISTINCT id), max(id)) FROM t`, "15 15 15")
	last := change.LSN(0x10000 + 14*0x100 + 0x10)
	if got := e.originLSN(t); got != last {
		t.Errorf("origin progress = %s, want %s", got, last)
	}
	lastTime := all[14][0].CommitTime
	e.expect(t, `SELECT format('%s %s %s %s', lsn, extract(epoch FROM at)::numeric(20,6), txns, changes) FROM progress`,
		fmt.Sprintf("%s %.6f 15 15", last, float64(lastTime.UnixMicro())/1e6))
}

func testSyncLSN(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE a (id int PRIMARY KEY)`, `CREATE TABLE b (id int PRIMARY KEY)`)
	ra := rel("public", "a", change.IdentityDefault, "id*")
	rb := rel("public", "b", change.IdentityDefault, "id*")
	syncAt := func(table string) (change.LSN, bool) {
		if table == "public.a" {
			return 0x3000, true
		}
		return 0, false
	}
	a := e.mustRun(t, Options{SyncLSN: syncAt},
		txn(0x1000, ins(ra, "1"), ins(rb, "1")),
		txn(0x2000, ins(ra, "2"), ins(rb, "2"), trunc(false, false, ra)),
		txn(0x3000, ins(ra, "3"), ins(rb, "3")), // commits at the sync LSN: applied
	)
	e.expect(t, `SELECT string_agg(id::text, ',' ORDER BY id) FROM a`, "3")
	e.expect(t, `SELECT string_agg(id::text, ',' ORDER BY id) FROM b`, "1,2,3")
	if st := a.Stats(); st.Skipped != 3 || st.Changes != 4 || st.Txns != 3 {
		t.Errorf("stats = %+v, want 3 skipped, 4 changes, 3 txns", st)
	}
}

func testMessageMovesOrigin(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c)
	msg := &change.Change{Kind: change.Message, Prefix: "pglink", Content: []byte("heartbeat")}
	e.mustRun(t, Options{}, txn(0x5000, msg))
	if got, want := e.originLSN(t), change.LSN(0x5010); got != want {
		t.Errorf("origin progress after a message-only transaction = %s, want %s", got, want)
	}
}

func testMissingTable(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY)`)
	r := rel("public", "t", change.IdentityDefault, "id*")
	missing := rel("public", "Missing", change.IdentityDefault, "id*")
	e.mustRun(t, Options{}, txn(0x1000, ins(r, "1")))
	_, err := e.run(t, Options{}, txn(0x2000, ins(r, "2")), txn(0x2A2B00, ins(r, "3"), ins(missing, "1")))
	if err == nil {
		t.Fatal("Run succeeded with a missing target table")
	}
	for _, want := range []string{`"public"."Missing"`, "0/2A2B00", "create it on the target"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if got, want := e.originLSN(t), change.LSN(0x1010); got != want {
		t.Errorf("origin moved to %s after a failed batch, want %s", got, want)
	}
	e.expect(t, `SELECT string_agg(id::text, ',') FROM t`, "1")
}

func testMissingColumn(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY, g int GENERATED ALWAYS AS (id * 2) STORED)`)
	r := rel("public", "t", change.IdentityDefault, "id*", "New Col")
	_, err := e.run(t, Options{}, txn(0x1000, ins(r, "1", "x")))
	if err == nil || !strings.Contains(err.Error(), `column(s) "New Col"`) || !strings.Contains(err.Error(), "ALTER TABLE") {
		t.Errorf("error = %v, want one naming the missing column and ALTER TABLE", err)
	}
	r = rel("public", "t", change.IdentityDefault, "id*", "g")
	_, err = e.run(t, Options{}, txn(0x1000, ins(r, "1", "2")))
	if err == nil || !strings.Contains(err.Error(), `generated column(s) "g"`) {
		t.Errorf("error = %v, want one naming the generated column", err)
	}
}

func testFailingStatement(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	r := rel("public", "t", change.IdentityDefault, "id*", "v")
	e.mustRun(t, Options{}, txn(0x1000, ins(r, "1", "a")))
	_, err := e.run(t, Options{}, txn(0x2000, ins(r, "2", "b")), txn(0x3000, ins(r, "3", "c"), ins(r, "1", "dup")))
	var want = `apply INSERT into "public"."t" at source 0/3000: ERROR: duplicate key`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want one containing %q", err, want)
	}
	if got := e.originLSN(t); got != 0x1010 {
		t.Errorf("origin moved to %s after a failed batch, want 0/1010", got)
	}
	e.expect(t, `SELECT string_agg(id::text, ',') FROM t`, "1")
	// The session is usable again: the failed transaction was rolled back.
	e.mustRun(t, Options{}, txn(0x2000, ins(r, "2", "b")))
	e.expect(t, `SELECT string_agg(id::text, ',' ORDER BY id) FROM t`, "1,2")
}

func testIncompleteInput(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY)`)
	r := rel("public", "t", change.IdentityDefault, "id*")
	cut := txn(0x2000, ins(r, "2"))
	_, err := e.run(t, Options{}, txn(0x1000, ins(r, "1")), cut[:2])
	if !errors.Is(err, ErrIncompleteTransaction) {
		t.Fatalf("error = %v, want ErrIncompleteTransaction", err)
	}
	e.expect(t, `SELECT count(*) FROM t`, "0")
	if got := e.originLSN(t); got != 0 {
		t.Errorf("origin moved to %s, want 0/0", got)
	}
}

func testCancel(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY)`)
	r := rel("public", "t", change.IdentityDefault, "id*")
	in := make(chan *change.Change)
	ctx, cancel := context.WithCancel(context.Background())
	a := New(Options{Conn: e.conn, Origin: e.db})
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, in) }()
	for _, ch := range txn(0x1000, ins(r, "1"), ins(r, "2")) {
		in <- ch
	}
	// The first transaction commits once the applier finds the input empty.
	deadline := time.Now().Add(30 * time.Second)
	for a.Stats().Txns != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, ch := range txn(0x2000, ins(r, "3"))[:2] { // the second transaction stays open
		in <- ch
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	e.expect(t, `SELECT string_agg(id::text, ',' ORDER BY id) FROM t`, "1,2")
	if got := e.originLSN(t); got != 0x1010 {
		t.Errorf("origin = %s, want 0/1010", got)
	}
}

func testReannounce(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY, a text)`)
	v1 := rel("public", "t", change.IdentityDefault, "id*", "a")
	v1again := rel("public", "t", change.IdentityDefault, "id*", "a")
	v2 := rel("public", "t", change.IdentityDefault, "id*", "a", "b")
	in := make(chan *change.Change, 100)
	a := New(Options{Conn: e.conn, Origin: e.db})
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background(), in) }()
	for _, ch := range append(txn(0x1000, ins(v1, "1", "x")), txn(0x2000, ins(v1again, "2", "y"))...) {
		in <- ch
	}
	deadline := time.Now().Add(30 * time.Second)
	for a.Stats().Txns != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// The source table gains a column: the target gets it first, then the
	// stream announces the relation again.
	c.Exec(e.db, `ALTER TABLE t ADD COLUMN b int`)
	for _, ch := range append(txn(0x3000, ins(v2, "3", "z", "7")), txn(0x4000, upd(v2, nil, "1", "x", "8"))...) {
		in <- ch
	}
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.expect(t, `SELECT string_agg(format('%s|%s|%s', id, a, coalesce(b::text, 'N')), ';' ORDER BY id) FROM t`, "1|x|8;2|y|N;3|z|7")
}

// testCancelMidTransaction cancels while a large source transaction
// streams through the pipeline: Run returns the cancellation and nothing
// of the transaction is committed.
func testCancelMidTransaction(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY)`)
	r := rel("public", "t", change.IdentityDefault, "id*")
	in := make(chan *change.Change, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := New(Options{Conn: e.conn, Origin: e.db})
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, in) }()
	in <- &change.Change{Kind: change.Begin, CommitLSN: 0x1000, CommitTime: baseTime}
	for i := range 20_000 {
		ch := ins(r, fmt.Sprint(i))
		ch.CommitLSN = 0x1000
		in <- ch
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	e.expect(t, `SELECT count(*) FROM t`, "0")
	if got := e.originLSN(t); got != 0 {
		t.Errorf("origin = %s, want 0/0", got)
	}
}

// testFoldOrigin folds a second origin into the first: the furthest
// progress of the two stays the position, and the second is gone.
func testFoldOrigin(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c)
	ctx := context.Background()
	one, two := e.db, e.db+"_2"
	advance := func(name string, lsn change.LSN) {
		t.Helper()
		if _, err := e.conn.Exec(ctx, `SELECT pg_replication_origin_advance($1, $2::text::pg_lsn)`, name, lsn.String()); err != nil {
			t.Fatal(err)
		}
	}
	check := func(want change.LSN) {
		t.Helper()
		if got := e.query(t, `SELECT string_agg(roname, ',' ORDER BY roname) FROM pg_replication_origin WHERE roname LIKE '`+one+`%'`); got != one {
			t.Errorf("origins left: %s, want %s", got, one)
		}
		if got, err := OriginProgress(ctx, e.conn, one, two); err != nil || got != want {
			t.Errorf("progress = %s (%v), want %s", got, err, want)
		}
	}
	for _, tc := range []struct {
		name     string
		one, two change.LSN
		want     change.LSN
	}{
		{"second further", 0x1000, 0x2000, 0x2000},
		{"first further", 0x3000, 0x2500, 0x3000},
		{"second never used", 0x3000, 0, 0x3000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := EnsureOrigin(ctx, e.conn, two); err != nil {
				t.Fatal(err)
			}
			advance(one, tc.one)
			if tc.two != 0 {
				advance(two, tc.two)
			}
			if got, err := OriginProgress(ctx, e.conn, one, two); err != nil || got != tc.want {
				t.Fatalf("progress before = %s (%v), want %s", got, err, tc.want)
			}
			if err := FoldOrigin(ctx, e.conn, one, two); err != nil {
				t.Fatal(err)
			}
			check(tc.want)
		})
	}
	// Nothing to fold: nothing changes.
	if err := FoldOrigin(ctx, e.conn, one, two); err != nil {
		t.Fatal(err)
	}
	check(0x3000)
}
