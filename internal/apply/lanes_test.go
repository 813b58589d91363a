package apply

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestTwoSessions applies backlogs in small batches on two sessions
// (lanes.go), where most batches start beside the one before.
func TestTwoSessions(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"max_replication_slots": "20"}})
	t.Run("RandomAgainstRowByRow", func(t *testing.T) {
		t.Parallel()
		testTwoSessionsRandom(t, c, false)
	})
	t.Run("TrickledAgainstRowByRow", func(t *testing.T) {
		t.Parallel()
		testTwoSessionsRandom(t, c, true)
	})
	t.Run("ReadersSeeWholeBatchesInOrder", func(t *testing.T) {
		t.Parallel()
		testTwoSessionsReaders(t, c)
	})
}

// testTwoSessionsRandom applies a random backlog (inserts, updates,
// deletes, key changes and inserts again of the same keys, on a table
// with a key only, one with a second unique index and one without a key)
// on two sessions and row by row: the tables must end alike, row by row.
// Trickled, the input runs dry at random points, inside transactions and
// at commits, while the source is known to have more (Options.SourceAhead):
// the apply waits for it with batches in flight.
func testTwoSessionsRandom(t *testing.T, c *pgtest.Cluster, trickled bool) {
	setup := []string{
		`CREATE TABLE kv (id int PRIMARY KEY, v text)`,
		`CREATE TABLE uq (id int PRIMARY KEY, email text UNIQUE, n int)`,
		`CREATE TABLE hist (id int, note text)`, `ALTER TABLE hist REPLICA IDENTITY FULL`,
	}
	kv := rel("public", "kv", change.IdentityDefault, "id*", "v")
	uq := rel("public", "uq", change.IdentityDefault, "id*", "email", "n")
	hist := rel("public", "hist", change.IdentityFull, "id", "note")
	rng := rand.New(rand.NewPCG(7, 11))
	kvRows, uqRows := map[int]bool{}, map[int]int{} // uq: id -> n
	emailGen := 0
	email := func() string { emailGen++; return fmt.Sprintf("e%d", emailGen) } // unique at every commit
	var txns [][]*change.Change
	for i := range 600 {
		var ops []*change.Change
		for range 1 + rng.IntN(4) {
			switch k := rng.IntN(30); {
			case k < 8: // kv: insert a new key or one deleted before
				id := rng.IntN(40)
				if kvRows[id] {
					ops = append(ops, upd(kv, nil, fmt.Sprint(id), fmt.Sprintf("u%d", i)))
				} else {
					kvRows[id] = true
					ops = append(ops, ins(kv, fmt.Sprint(id), fmt.Sprintf("i%d", i)))
				}
			case k < 11:
				id := rng.IntN(40)
				if kvRows[id] {
					delete(kvRows, id)
					ops = append(ops, del(kv, fmt.Sprint(id), nil))
				}
			case k < 13: // a key change
				from, to := rng.IntN(40), rng.IntN(40)
				if kvRows[from] && !kvRows[to] {
					delete(kvRows, from)
					kvRows[to] = true
					ops = append(ops, upd(kv, tup(fmt.Sprint(from), nil), fmt.Sprint(to), fmt.Sprintf("m%d", i)))
				}
			case k < 22: // uq, whose second unique index keeps it out of the first part
				id := rng.IntN(20)
				if n, ok := uqRows[id]; ok && rng.IntN(5) == 0 {
					delete(uqRows, id)
					ops = append(ops, del(uq, fmt.Sprint(id), nil, nil))
				} else if ok {
					uqRows[id] = n + 1
					ops = append(ops, upd(uq, nil, fmt.Sprint(id), email(), fmt.Sprint(n+1)))
				} else {
					uqRows[id] = 0
					ops = append(ops, ins(uq, fmt.Sprint(id), email(), "0"))
				}
			default:
				ops = append(ops, ins(hist, fmt.Sprint(i), fmt.Sprintf("h%d", rng.IntN(3))))
			}
		}
		txns = append(txns, txn(change.LSN(0x1000+i*0x100), ops...))
	}
	two := newEnv(t, c, setup...)
	rows := &env{c: c, db: two.db + "_rows"}
	c.CreateDB(rows.db)
	c.Exec(rows.db, setup...)
	rows.conn = rows.session(t)
	opts := two.withSecond(t, Options{MaxBatchDelay: time.Hour, MaxBatchTxns: 3})
	var a *Applier
	if trickled {
		last := txns[len(txns)-1][0].CommitLSN // inside the last transaction
		opts.SourceAhead = func() change.LSN { return last }
		a = two.mustRunTrickled(t, opts, func(int) bool { return rng.IntN(7) == 0 }, txns...)
	} else {
		a = two.mustRun(t, opts, txns...)
	}
	b := rows.mustRun(t, Options{RowByRow: true}, txns...)
	for _, tbl := range []string{"kv", "uq", "hist"} {
		if got, want := two.query(t, tableRows(tbl)), rows.query(t, tableRows(tbl)); got != want {
			t.Errorf("%s differs\ntwo sessions: %s\n  row by row: %s", tbl, cut(got), cut(want))
		}
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.Conflicts != 0 || sb.Conflicts != 0 || sa.Changes != sb.Changes || sa.Batches != 200 {
		t.Errorf("two sessions %+v, row by row %+v: want no conflicts, the same changes, 200 batches", sa, sb)
	}
	if got, want := two.originLSN(t), txns[len(txns)-1][0].CommitLSN+0x10; got != want {
		t.Errorf("origins at %s, want %s", got, want)
	}
}

// testTwoSessionsReaders moves money between a few accounts, one transfer
// per source transaction, with a history row each, in batches of two
// source transactions on two sessions, while a reader looks at the target
// again and again: each time it must see the state after some number of
// whole transfers (the balances that number of transfers leave), never a
// batch in part or a later batch without an earlier one. Batches in turn
// move money among accounts 1-3 and 4-6, so each batch may start, and
// finish, beside the one before: only the order of the commits keeps a
// later batch from showing first.
func testTwoSessionsReaders(t *testing.T, c *pgtest.Cluster) {
	const accounts = 6
	setup := []string{`CREATE TABLE acct (id int PRIMARY KEY, bal int)`,
		`INSERT INTO acct SELECT g, 100 FROM generate_series(1, 6) g`,
		`CREATE TABLE moves (n int, amount int)`, `ALTER TABLE moves REPLICA IDENTITY FULL`}
	e := newEnv(t, c, setup...)
	acct := rel("public", "acct", change.IdentityDefault, "id*", "bal")
	moves := rel("public", "moves", change.IdentityFull, "n", "amount")
	rng := rand.New(rand.NewPCG(3, 5))
	bal := make([]int, accounts+1)
	for i := 1; i <= accounts; i++ {
		bal[i] = 100
	}
	render := func() string {
		var b strings.Builder
		for i := 1; i <= accounts; i++ {
			fmt.Fprintf(&b, "%d,", bal[i])
		}
		return b.String()
	}
	states := []string{render()} // after 0, 1, 2... transfers
	var txns [][]*change.Change
	for n := 1; n <= 2000; n++ {
		half := accounts / 2 * ((n - 1) / 2 % 2) // batches of two in turn: accounts 1-3, then 4-6
		from, to := 1+half+rng.IntN(accounts/2), 1+half+rng.IntN(accounts/2-1)
		if to >= from {
			to++
		}
		amount := 1 + rng.IntN(9)
		bal[from] -= amount
		bal[to] += amount
		txns = append(txns, txn(change.LSN(0x1000+n*0x100),
			upd(acct, nil, fmt.Sprint(from), fmt.Sprint(bal[from])),
			ins(moves, fmt.Sprint(n), fmt.Sprint(amount)),
			upd(acct, nil, fmt.Sprint(to), fmt.Sprint(bal[to]))))
		states = append(states, render())
	}
	reader := c.Connect(e.db)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var bad []string
	looks := 0
	wg.Go(func() {
		for ctx.Err() == nil {
			var n int
			var got string
			err := reader.QueryRow(ctx, `SELECT (SELECT count(*) FROM moves), (SELECT string_agg(bal::text || ',', '' ORDER BY id) FROM acct)`).Scan(&n, &got)
			if err != nil {
				if ctx.Err() == nil {
					bad = append(bad, err.Error())
				}
				return
			}
			looks++
			if n >= len(states) || states[n] != got {
				bad = append(bad, fmt.Sprintf("after %d transfers the target shows balances %s", n, got))
			}
		}
	})
	a := e.mustRun(t, e.withSecond(t, Options{MaxBatchDelay: time.Hour, MaxBatchTxns: 2}), txns...)
	cancel()
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("the reader saw %d states that are not whole transfers in order (of %d looks), first: %s", len(bad), looks, bad[0])
	}
	e.expect(t, `SELECT string_agg(bal::text || ',', '' ORDER BY id) FROM acct`, states[len(states)-1])
	if st := a.Stats(); st.Batches != 1000 || st.Fallbacks != 0 {
		t.Errorf("stats %+v: want 1000 batches, no fallback", st)
	}
	t.Logf("the reader looked %d times", looks)
}
