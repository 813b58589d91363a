package apply

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

// foldCase is one sequence of changes applied in one batch by set-based
// apply and by row-by-row apply, each on its own copy of the same tables:
// both must leave every table alike, row by row, and count the same
// conflicts; the set-based result must also be want.
type foldCase struct {
	setup     []string
	setupFor  func(db string) []string // setup that names the database
	query     string                   // when set, the set-based result of this query must be want
	tables    []string                 // compared; the first one's rows must be want
	txns      func() [][]*change.Change
	want      string
	fallback  bool // the set-based statements must fail and fall back
	conflicts int64
	changes   int64
	// When batchTxns is set, batches hold at most that many source
	// transactions, and there must be batches of them, with exactly
	// fallbacks fallbacks.
	batchTxns, batches int
	fallbacks          int64
}

// tableRows renders a table's rows, sorted, as text.
func tableRows(table string) string {
	return fmt.Sprintf(`SELECT coalesce(string_agg(x::text, ';' ORDER BY x::text COLLATE "C"), '') FROM %s x`, table)
}

// TestFold runs the folding cases on a cluster of their own, with room for
// five replication origins per case.
func TestFold(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"max_replication_slots": "200"}})
	kv := rel("public", "kv", change.IdentityDefault, "id*", "v")
	kvSetup := []string{`CREATE TABLE kv (id int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one'), (2, 'two'), (3, 'three')`}
	big := rel("public", "big", change.IdentityDefault, "id*", "v", "b")
	bigSetup := []string{`CREATE TABLE big (id int PRIMARY KEY, v text, b text)`,
		`INSERT INTO big VALUES (1, 'one', repeat('x', 100000)), (2, 'two', repeat('y', 100000))`}
	kv2 := rel("public", "kv2", change.IdentityDefault, "id*", "v")
	kv2Setup := append(slices.Clone(kvSetup), `CREATE TABLE kv2 (id int PRIMARY KEY, v text)`, `INSERT INTO kv2 VALUES (1, 'x')`)
	uq := rel("public", "uq", change.IdentityDefault, "id*", "email")
	uqSetup := []string{`CREATE TABLE uq (id int PRIMARY KEY, email text UNIQUE)`, `INSERT INTO uq VALUES (1, 'a'), (2, 'b'), (3, 'c')`}
	cases := map[string]foldCase{
		"InsertUpdateUpdate": {setup: kvSetup, tables: []string{"kv"}, changes: 3,
			txns: func() [][]*change.Change {
				return [][]*change.Change{txn(0x1000, ins(kv, "10", "a")), txn(0x1100, upd(kv, nil, "10", "b")),
					txn(0x1200, upd(kv, nil, "10", "c"))}
			},
			want: "(1,one);(10,c);(2,two);(3,three)"},
		"InsertDelete": {setup: kvSetup, tables: []string{"kv"}, changes: 3,
			txns: func() [][]*change.Change {
				return [][]*change.Change{txn(0x1000, ins(kv, "10", "a"), upd(kv, nil, "10", "b")), txn(0x1100, del(kv, "10", nil))}
			},
			want: "(1,one);(2,two);(3,three)"},
		"DeleteInsert": {setup: kvSetup, tables: []string{"kv"}, changes: 4,
			txns: func() [][]*change.Change {
				return [][]*change.Change{txn(0x1000, del(kv, "1", nil)), txn(0x1100, ins(kv, "1", "again"), upd(kv, nil, "1", "again2")),
					txn(0x1200, del(kv, "2", nil))}
			},
			want: "(1,again2);(3,three)"},
		"KeyChange": {setup: kvSetup, tables: []string{"kv"}, changes: 3,
			txns: func() [][]*change.Change {
				return [][]*change.Change{txn(0x1000, upd(kv, tup("1", nil), "100", "moved")),
					txn(0x1100, upd(kv, nil, "100", "moved2"), upd(kv, tup("100", nil), "101", "moved3"))}
			},
			want: "(101,moved3);(2,two);(3,three)"},
		"KeySwap": {setup: kvSetup, tables: []string{"kv"}, changes: 3,
			txns: func() [][]*change.Change {
				return [][]*change.Change{txn(0x1000, upd(kv, tup("1", nil), "99", "one"), upd(kv, tup("2", nil), "1", "two"),
					upd(kv, tup("99", nil), "2", "one"))}
			},
			want: "(1,two);(2,one);(3,three)"},
		"HotRows": {setup: kvSetup, tables: []string{"kv"}, changes: 601,
			txns: func() [][]*change.Change {
				var out [][]*change.Change
				for i := range 300 {
					out = append(out, txn(change.LSN(0x1000+i*0x100), upd(kv, nil, fmt.Sprint(i%3+1), fmt.Sprint("v", i)),
						ins(kv, fmt.Sprint(1000+i), fmt.Sprint("h", i))))
				}
				return append(out, txn(0x100000, del(kv, "3", nil)))
			},
			query: `SELECT string_agg(format('%s=%s', id, v), ',' ORDER BY id) || ' ' || (SELECT count(*) FROM kv WHERE id >= 1000) FROM kv WHERE id < 1000`,
			want:  "1=v297,2=v298 300"},
		"UnchangedToast": {setup: bigSetup, tables: []string{"big"}, changes: 7,
			txns: func() [][]*change.Change {
				return [][]*change.Change{
					// b not sent: kept as the target has it.
					txn(0x1000, upd(big, nil, "1", "uno", unchanged), upd(big, nil, "1", "uno2", unchanged)),
					// inserted in the batch, then updated without b: the inserted b stays.
					txn(0x1100, ins(big, "3", "three", "zzz"), upd(big, nil, "3", "tres", unchanged)),
					// key change without b: b from the fold's image of row 3.
					txn(0x1200, upd(big, tup("3", nil, nil), "4", "cuatro", unchanged)),
					// key change without b of a row the fold does not hold: row by row.
					txn(0x1300, upd(big, tup("2", nil, nil), "5", "cinco", unchanged)),
					txn(0x1400, upd(big, nil, "5", "cinco2", unchanged))}
			},
			query: `SELECT string_agg(format('%s|%s|%s%s', id, v, length(b), left(b, 1)), ';' ORDER BY id) FROM big`,
			want:  "1|uno2|100000x;4|cuatro|3z;5|cinco2|100000y"},
		"FiringTrigger": {setup: append(kvSetup, `CREATE TABLE audit (id int, kv_rows bigint)`,
			`CREATE TABLE watched (id int PRIMARY KEY)`,
			`CREATE FUNCTION count_kv() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN INSERT INTO audit SELECT NEW.id, count(*) FROM kv; RETURN NEW; END $$`,
			`CREATE TRIGGER count_kv AFTER INSERT ON watched FOR EACH ROW EXECUTE FUNCTION count_kv()`,
			`ALTER TABLE watched ENABLE ALWAYS TRIGGER count_kv`),
			tables: []string{"audit", "kv", "watched"}, changes: 5,
			txns: func() [][]*change.Change {
				watched := rel("public", "watched", change.IdentityDefault, "id*")
				return [][]*change.Change{txn(0x1000, ins(kv, "10", "a"), ins(watched, "1"), ins(kv, "11", "b")),
					txn(0x1100, ins(watched, "2"), del(kv, "1", nil))}
			},
			want: "(1,4);(2,5)"},
		"Keyless": {setup: []string{`CREATE TABLE hist (n int, v text)`, `ALTER TABLE hist REPLICA IDENTITY FULL`,
			`INSERT INTO hist VALUES (0, 'old')`},
			tables: []string{"hist"}, changes: 8,
			txns: func() [][]*change.Change {
				hist := rel("public", "hist", change.IdentityFull, "n", "v")
				return [][]*change.Change{txn(0x1000, ins(hist, "1", "a"), ins(hist, "1", "a"), ins(hist, "2", "b")),
					txn(0x1100, del(hist, "1", "a"), ins(hist, "3", nil), upd(hist, tup("2", "b"), "2", "bb")),
					txn(0x1200, ins(hist, "4", "d"), del(hist, "0", "old"))}
			},
			want: "(1,a);(2,bb);(3,);(4,d)"},
		"Partitioned": {setup: []string{`CREATE TABLE pt (id int PRIMARY KEY, v text) PARTITION BY RANGE (id)`,
			`CREATE TABLE pt_lo PARTITION OF pt FOR VALUES FROM (0) TO (10)`,
			`CREATE TABLE pt_hi PARTITION OF pt FOR VALUES FROM (10) TO (100)`, `INSERT INTO pt VALUES (1, 'a'), (15, 'b')`},
			tables: []string{"pt", "pt_lo", "pt_hi"}, changes: 6,
			txns: func() [][]*change.Change {
				pt := rel("public", "pt", change.IdentityDefault, "id*", "v")
				return [][]*change.Change{txn(0x1000, ins(pt, "2", "c"), upd(pt, nil, "1", "a2"), upd(pt, nil, "15", "b2")),
					txn(0x1100, upd(pt, tup("1", nil), "20", "moved"), upd(pt, nil, "2", "c2"), del(pt, "15", nil))}
			},
			want: "(2,c2);(20,moved)"},
		"Types": {setupFor: typesSetup, tables: []string{"ty"}, changes: 6,
			txns: func() [][]*change.Change {
				cols := []string{"id*"}
				for _, tc := range typeCases {
					cols = append(cols, tc.col)
				}
				ty := rel("public", "ty", change.IdentityDefault, cols...)
				key := func(id string) []any { // the key, NULL elsewhere
					vals := make([]any, len(cols))
					vals[0] = id
					return vals
				}
				return [][]*change.Change{
					txn(0x1000, ins(ty, typeRow("1", 0)...), ins(ty, typeRow("2", 1)...), ins(ty, typeRow("3", 2)...)),
					txn(0x1100, upd(ty, nil, typeRow("1", 1)...), upd(ty, tup(key("2")...), typeRow("20", 2)...), del(ty, key("3")...))}
			}},
		"UniqueSwapFallsBack": {setup: uqSetup, tables: []string{"uq"}, changes: 3, fallback: true,
			txns: func() [][]*change.Change {
				return [][]*change.Change{txn(0x1000, upd(uq, nil, "1", "tmp"), upd(uq, nil, "2", "a"), upd(uq, nil, "1", "b"))}
			},
			want: "(1,b);(2,a);(3,c)"},
		"ConflictCounted": {setup: kvSetup, tables: []string{"kv"}, changes: 4, fallback: true, conflicts: 2,
			txns: func() [][]*change.Change {
				return [][]*change.Change{txn(0x1000, upd(kv, nil, "1", "uno"), upd(kv, nil, "77", "none"), ins(kv, "5", "five")),
					txn(0x1100, del(kv, "78", nil))}
			},
			want: "(1,uno);(2,two);(3,three);(5,five)"},
		"DeleteThenUpdate": {setup: kvSetup, tables: []string{"kv"}, changes: 3, fallback: true, conflicts: 1,
			txns: func() [][]*change.Change {
				return [][]*change.Change{txn(0x1000, del(kv, "1", nil), ins(kv, "6", "six")), txn(0x1100, upd(kv, nil, "1", "gone"))}
			},
			want: "(2,two);(3,three);(6,six)"},
		// Batches of one source transaction each, two in flight: the
		// second fails and falls back, and the server skips the third,
		// sent behind it; it is sent again. The second batch's set-based
		// INSERTs are prepared after its failing UPDATE, so their
		// preparation is skipped too, and the next use prepares them
		// again. (kv2 is mapped in the first batch: mapping a table
		// flushes the fold.)
		"FailedBatchInFlight": {setup: kv2Setup, tables: []string{"kv", "kv2"}, changes: 9, fallback: true, conflicts: 1,
			batchTxns: 1, batches: 5, fallbacks: 1,
			txns: func() [][]*change.Change {
				return [][]*change.Change{txn(0x0f00, upd(kv2, nil, "1", "y")),
					txn(0x1000, upd(kv, nil, "77", "none"), ins(kv2, "9", "nine"), ins(kv, "5", "five")),
					txn(0x1100, ins(kv2, "10", "a"), upd(kv, nil, "1", "uno")),
					txn(0x1200, ins(kv2, "11", "b"), del(kv, "2", nil)),
					txn(0x1300, upd(kv2, nil, "10", "c"))}
			},
			want: "(1,uno);(3,three);(5,five)"},
		// The batch sent again fails too, and falls back in turn.
		"TwoFailedBatchesInFlight": {setup: kv2Setup, tables: []string{"kv", "kv2"}, changes: 7, fallback: true, conflicts: 2,
			batchTxns: 1, batches: 4, fallbacks: 2,
			txns: func() [][]*change.Change {
				return [][]*change.Change{txn(0x0f00, upd(kv2, nil, "1", "y")),
					txn(0x1000, upd(kv, nil, "77", "none"), ins(kv2, "9", "nine")),
					txn(0x1100, ins(kv2, "10", "a"), del(kv, "78", nil)),
					txn(0x1200, ins(kv2, "11", "b"), upd(kv, nil, "3", "tres"))}
			},
			want: "(1,one);(2,two);(3,tres)"},
		"Truncate": {setup: append(kvSetup, `CREATE TABLE hist (n int, v text)`, `ALTER TABLE hist REPLICA IDENTITY FULL`),
			tables: []string{"kv", "hist"}, changes: 6,
			txns: func() [][]*change.Change {
				hist := rel("public", "hist", change.IdentityFull, "n", "v")
				return [][]*change.Change{txn(0x1000, ins(kv, "7", "seven"), ins(hist, "1", "a"), upd(kv, nil, "2", "dos")),
					txn(0x1100, trunc(false, false, kv)), txn(0x1200, ins(kv, "2", "after"), ins(hist, "2", "b"))}
			},
			want: "(2,after)"},
	}
	for name, fc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runFoldCase(t, c, fc)
		})
	}
	t.Run("Gate", func(t *testing.T) {
		t.Parallel()
		testFoldGate(t, c)
	})
}

// caseEnv makes the database name with the case's setup, and its apply
// session.
func caseEnv(t *testing.T, c *pgtest.Cluster, fc foldCase, name string) *env {
	e := &env{c: c, db: name}
	c.CreateDB(e.db)
	if len(fc.setup) > 0 {
		c.Exec(e.db, fc.setup...)
	}
	if fc.setupFor != nil {
		c.Exec(e.db, fc.setupFor(e.db)...) // before the session: the database's settings apply to new sessions
	}
	e.conn = e.session(t)
	return e
}

func runFoldCase(t *testing.T, c *pgtest.Cluster, fc foldCase) {
	set := caseEnv(t, c, fc, dbName(t))
	rows := caseEnv(t, c, fc, set.db+"_rows")
	// One batch: no delay limit, so a slow machine does not cut it.
	log := slog.New(slog.NewTextHandler(pgtest.LogTo(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := set.mustRun(t, Options{MaxBatchDelay: time.Hour, MaxBatchTxns: fc.batchTxns, Logger: log}, fc.txns()...)
	b := rows.mustRun(t, Options{MaxBatchDelay: time.Hour, MaxBatchTxns: fc.batchTxns, RowByRow: true}, fc.txns()...)
	checkFoldCase(t, fc, set, rows, a.Stats(), b.Stats())
	// The same on two sessions (lanes.go): batches that are all folded
	// changes go to them in turn.
	two := caseEnv(t, c, fc, set.db+"_two")
	opts := two.withSecond(t, Options{MaxBatchDelay: time.Hour, MaxBatchTxns: fc.batchTxns, Logger: log})
	a2 := two.mustRun(t, opts, fc.txns()...)
	t.Run("TwoSessions", func(t *testing.T) { checkFoldCase(t, fc, two, rows, a2.Stats(), b.Stats()) })
}

// checkFoldCase compares the set-based result with the row-by-row one.
func checkFoldCase(t *testing.T, fc foldCase, set, rows *env, sa, sb Stats) {
	if want := max(fc.batches, 1); sa.Batches != int64(want) {
		t.Errorf("set-based: %d batches, want %d", sa.Batches, want)
	}
	if fc.batchTxns > 0 && sa.Fallbacks != fc.fallbacks {
		t.Errorf("set-based fell back %d times, want %d", sa.Fallbacks, fc.fallbacks)
	}
	if sa.Conflicts != fc.conflicts || sb.Conflicts != fc.conflicts {
		t.Errorf("conflicts: set-based %d, row by row %d, want %d", sa.Conflicts, sb.Conflicts, fc.conflicts)
	}
	if sa.Changes != fc.changes || sb.Changes != fc.changes {
		t.Errorf("changes: set-based %d, row by row %d, want %d", sa.Changes, sb.Changes, fc.changes)
	}
	if got := sa.Fallbacks > 0; got != fc.fallback {
		t.Errorf("set-based fell back %d times, want fallback %v", sa.Fallbacks, fc.fallback)
	}
	if sb.Fallbacks != 0 {
		t.Errorf("row by row fell back %d times", sb.Fallbacks)
	}
	for i, tbl := range fc.tables {
		got, want := set.query(t, tableRows(tbl)), rows.query(t, tableRows(tbl))
		if got != want {
			t.Errorf("%s differs\n set-based: %s\nrow by row: %s", tbl, cut(got), cut(want))
		}
		if i == 0 && fc.want != "" && fc.query == "" && got != fc.want {
			t.Errorf("%s = %s, want %s", tbl, cut(got), fc.want)
		}
	}
	if fc.query != "" {
		set.expect(t, fc.query, fc.want)
	}
}

func cut(s string) string {
	if len(s) > 400 {
		return s[:400] + "..."
	}
	return s
}

// holdGate holds the apply before the source transaction at `at`, once:
// in Wait it records what the target shows, then lets the apply go on.
type holdGate struct {
	at   change.LSN
	done bool
	seen func() string
	got  string
}

func (g *holdGate) Holding(lsn change.LSN) bool { return !g.done && lsn >= g.at }

func (g *holdGate) Wait(ctx context.Context, lsn change.LSN) error {
	g.got, g.done = g.seen(), true
	return nil
}

// testFoldGate holds the apply in the middle of what would be one batch:
// the target shows exactly the transactions before the hold, with the
// folded changes of the batch applied, and the rest after.
func testFoldGate(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE kv (id int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, '0'), (2, '0')`)
	kv := rel("public", "kv", change.IdentityDefault, "id*", "v")
	var txns [][]*change.Change
	for i := range 100 {
		txns = append(txns, txn(change.LSN(0x1000+i*0x100), upd(kv, nil, fmt.Sprint(i%2+1), fmt.Sprint(i)),
			ins(kv, fmt.Sprint(100+i), "x")))
	}
	g := &holdGate{at: txns[50][0].CommitLSN, seen: func() string {
		return e.query(t, `SELECT string_agg(id || '=' || v, ',' ORDER BY id) || ' ' || (SELECT count(*) FROM kv WHERE id >= 100) FROM kv WHERE id < 100`)
	}}
	a := e.mustRun(t, Options{MaxBatchDelay: time.Hour, Gate: g}, txns...)
	if want := "1=48,2=49 50"; g.got != want {
		t.Errorf("held before the 51st transaction, the target showed %q, want %q", g.got, want)
	}
	e.expect(t, `SELECT string_agg(id || '=' || v, ',' ORDER BY id) || ' ' || (SELECT count(*) FROM kv WHERE id >= 100) FROM kv WHERE id < 100`, "1=98,2=99 100")
	if st := a.Stats(); st.Batches != 2 || st.Fallbacks != 0 {
		t.Errorf("stats = %+v, want 2 batches, no fallback", st)
	}
}
