package apply

import (
	"testing"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestApply runs every apply test on one shared cluster, each in its own
// database, so the package's tests stay fast.
func TestApply(t *testing.T) {
	// Each test's database has its own replication origin, and a server
	// keeps the progress of at most max_replication_slots origins.
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"max_replication_slots": "40"}})
	tests := map[string]func(*testing.T, *pgtest.Cluster){
		"Kinds":              testKinds,
		"Truncate":           testTruncate,
		"ReplicaFull":        testReplicaFull,
		"QuotedNames":        testQuotedNames,
		"Partitioned":        testPartitioned,
		"Types":              testTypes,
		"ExactlyOnce":        testExactlyOnce,
		"SyncLSN":            testSyncLSN,
		"MessageMovesOrigin": testMessageMovesOrigin,
		"FoldOrigin":         testFoldOrigin,
		"Backlog":            testBacklog,
		"Trickle":            testTrickle,
		"MaxBatchDelay":      testMaxBatchDelay,
		"SourceAhead":        testSourceAhead,
		"MissingTable":       testMissingTable,
		"MissingColumn":      testMissingColumn,
		"FailingStatement":   testFailingStatement,
		"IncompleteInput":    testIncompleteInput,
		"Cancel":             testCancel,
		"CancelMidTxn":       testCancelMidTransaction,
		"Reannounce":         testReannounce,
		"BinaryArrays":       testBinaryArrays,
		"DurableCommits":     testDurableCommits,
		"CommitRollback":     testCommitAnsweredRollback,
	}
	t.Run("Parallel", func(t *testing.T) {
		for name, fn := range tests {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				fn(t, c)
			})
		}
	})
	// Alone: it measures the process's heap, which the others add to.
	t.Run("HugeTransaction", func(t *testing.T) { testHugeTransaction(t, c) })
}

func testKinds(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY, name text, big text, n numeric)`)
	r := rel("public", "t", change.IdentityDefault, "id*", "name", "big", "n")
	a := e.mustRun(t, Options{},
		txn(0x1000, ins(r, "1", "one", "B1", nil), ins(r, "2", "two", "B2", "2.5"), ins(r, "3", "three", "B3", "3"),
			ins(r, "4", "", "", "4")),
		txn(0x2000,
			upd(r, nil, "1", "uno", unchanged, "1.0"),                    // key from New, TOASTed value kept
			upd(r, tup("2", nil, nil, nil), "20", "two", unchanged, nil), // key changed: old key sent
			del(r, "3", nil, nil, nil)),
	)
	e.expect(t, `SELECT string_agg(format('%s|%s|%s|%s', id, coalesce(name, 'N'), coalesce(big, 'N'), coalesce(n::text, 'N')), ';' ORDER BY id) FROM t`,
		"1|uno|B1|1.0;4|||4;20|two|B2|N")
	st := a.Stats()
	if st.Txns != 2 || st.Changes != 7 || st.Batches != 1 || st.Conflicts != 0 {
		t.Errorf("stats = %+v, want 2 txns, 7 changes, 1 batch, 0 conflicts", st)
	}
	if st.LastEndLSN != 0x2010 || !st.LastCommitTime.Equal(txn(0x2000)[0].CommitTime) {
		t.Errorf("last = %s at %s, want 0/2010 at %s", st.LastEndLSN, st.LastCommitTime, txn(0x2000)[0].CommitTime)
	}
	if got, want := e.originLSN(t), change.LSN(0x2010); got != want {
		t.Errorf("origin progress = %s, want %s", got, want)
	}
	// The session's origin is released when Run returns.
	var setup bool
	if err := e.conn.QueryRow(t.Context(), `SELECT pg_replication_origin_session_is_setup()`).Scan(&setup); err != nil || setup {
		t.Errorf("origin still set up on the session after Run (%v)", err)
	}
}

func testTruncate(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c,
		`CREATE TABLE parent (id serial PRIMARY KEY, v text)`,
		`CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id))`,
		`CREATE TABLE other (id int PRIMARY KEY)`,
		`CREATE TABLE kept (id int PRIMARY KEY)`,
		`SELECT setval('parent_id_seq', 50)`)
	parent := rel("public", "parent", change.IdentityDefault, "id*", "v")
	child := rel("public", "child", change.IdentityDefault, "id*", "parent_id")
	other := rel("public", "other", change.IdentityDefault, "id*")
	kept := rel("public", "kept", change.IdentityDefault, "id*")
	e.mustRun(t, Options{},
		txn(0x1000, ins(parent, "1", "a"), ins(parent, "2", "b"), ins(child, "1", "1"), ins(other, "1"), ins(kept, "1")),
		txn(0x2000, trunc(true, true, parent)),
		txn(0x3000, trunc(false, false, other)),
	)
	e.expect(t, `SELECT (SELECT count(*) FROM parent) + (SELECT count(*) FROM child) + (SELECT count(*) FROM other)`, "0")
	e.expect(t, `SELECT count(*) FROM kept`, "1")
	e.expect(t, `SELECT format('%s %s', last_value, is_called) FROM parent_id_seq`, "1 f")
}

func testReplicaFull(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE d (a int, b text, j json, p point)`, `ALTER TABLE d REPLICA IDENTITY FULL`)
	r := rel("public", "d", change.IdentityFull, "a", "b", "j", "p")
	a := e.mustRun(t, Options{},
		txn(0x1000, ins(r, "1", "x", `{"k": 1}`, "(1,2)"), ins(r, "1", "x", `{"k": 1}`, "(1,2)"),
			ins(r, "2", "y", "[1, 2]", "(3,4)"), ins(r, "3", nil, nil, nil), ins(r, "3", nil, nil, nil)),
		txn(0x2000,
			del(r, "1", "x", `{"k": 1}`, "(1,2)"),
			upd(r, tup("3", nil, nil, nil), "3", "z", nil, nil),
			upd(r, tup("2", "y", "[1, 2]", "(3,4)"), "2", "y", unchanged, "(5,6)"),
			del(r, "9", "none", nil, nil)), // no such row: a conflict, not an error
	)
	e.expect(t, `SELECT string_agg(format('%s|%s|%s|%s', a, coalesce(b, 'N'), coalesce(j::text, 'N'), coalesce(p::text, 'N')), ';' ORDER BY a, b NULLS FIRST) FROM d`,
		`1|x|{"k": 1}|(1,2);2|y|[1, 2]|(5,6);3|N|N|N;3|z|N|N`)
	if got := a.Stats().Conflicts; got != 1 {
		t.Errorf("conflicts = %d, want 1", got)
	}
}

func testQuotedNames(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE SCHEMA "My Schema"`,
		`CREATE TABLE "My Schema"."Mixed""Case" ("Id" int PRIMARY KEY, "Col A" text, "select" int)`)
	r := rel("My Schema", `Mixed"Case`, change.IdentityDefault, "Id*", "Col A", "select")
	e.mustRun(t, Options{},
		txn(0x1000, ins(r, "1", "a", "7"), ins(r, "2", "c", "9")),
		txn(0x2000, upd(r, nil, "1", "b", "8"), del(r, "2", nil, nil)),
		txn(0x3000, trunc(false, false, r), ins(r, "3", "d", "10")),
	)
	e.expect(t, `SELECT string_agg(format('%s|%s|%s', "Id", "Col A", "select"), ';') FROM "My Schema"."Mixed""Case"`, "3|d|10")
}

func testPartitioned(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c,
		`CREATE TABLE pt (id int PRIMARY KEY, v text) PARTITION BY RANGE (id)`,
		`CREATE TABLE pt_lo PARTITION OF pt FOR VALUES FROM (0) TO (10)`,
		`CREATE TABLE pt_hi PARTITION OF pt FOR VALUES FROM (10) TO (100)`,
		`CREATE TABLE pf (id int, v text) PARTITION BY RANGE (id)`,
		`CREATE TABLE pf_lo PARTITION OF pf FOR VALUES FROM (0) TO (10)`,
		`CREATE TABLE pf_hi PARTITION OF pf FOR VALUES FROM (10) TO (100)`)
	pt := rel("public", "pt", change.IdentityDefault, "id*", "v")
	pf := rel("public", "pf", change.IdentityFull, "id", "v")
	e.mustRun(t, Options{},
		txn(0x1000, ins(pt, "1", "a"), ins(pt, "15", "b"), ins(pt, "2", "c"),
			ins(pf, "1", "same"), ins(pf, "15", "same")), // both rows at ctid (0,1) of their partition
		txn(0x2000, upd(pt, tup("1", nil), "20", "a2"), del(pt, "15", nil), upd(pt, nil, "2", "c2"),
			del(pf, "15", "same")),
	)
	e.expect(t, `SELECT string_agg(format('%s|%s|%s', tableoid::regclass, id, v), ';' ORDER BY id) FROM pt`, "pt_lo|2|c2;pt_hi|20|a2")
	e.expect(t, `SELECT string_agg(format('%s|%s|%s', tableoid::regclass, id, v), ';' ORDER BY id) FROM pf`, "pf_lo|1|same")
	e.mustRun(t, Options{}, txn(0x3000, trunc(false, false, pt)))
	e.expect(t, `SELECT count(*) FROM pt`, "0")
}
