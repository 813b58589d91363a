package stream

import (
	"context"
	"strconv"
	"testing"

	"github.com/pglink/pglink/internal/change"
)

// expectIDs checks that body is inserts into big whose ids are the given
// ranges, in order.
func expectIDs(t *testing.T, body []*change.Change, ranges ...[2]int) {
	t.Helper()
	i := 0
	for _, rg := range ranges {
		for id := rg[0]; id <= rg[1]; id++ {
			if i >= len(body) {
				t.Fatalf("only %d changes, want id %d next", len(body), id)
			}
			c := body[i]
			if c.Kind != change.Insert || c.Rel.Name != "big" || string(c.New[0].Data) != strconv.Itoa(id) {
				t.Fatalf("change %d: %s %q, want insert of id %d", i, c.Kind, text(c.New), id)
			}
			i++
		}
	}
	if i != len(body) {
		t.Fatalf("%d changes, want %d", len(body), i)
	}
}

func TestStreamedTransactions(t *testing.T) {
	t.Parallel()
	src := newSource(t,
		"CREATE TABLE big (id int PRIMARY KEY, v text)",
		"CREATE TABLE marker (id int)",
	)
	src.createSlot("streamed")
	r := src.stream("streamed", 1000, nil)
	insert := func(from, to int) string {
		return "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(" +
			strconv.Itoa(from) + ", " + strconv.Itoa(to) + ") g"
	}

	t.Run("large transaction", func(t *testing.T) {
		src.Exec(srcDB, insert(1, 50000))
		body, _ := r.txn(t)
		expectIDs(t, body, [2]int{1, 50000})
		// The counters move just after the Commit went out: wait for them.
		waitFor(t, "the streamed transaction counted", func() bool { return r.Stats().StreamedTxns == 1 })
		if st := r.Stats(); st.StreamedTxns != 1 || st.SpooledBytes < 50000*40 || st.SpoolBytes != 0 {
			t.Errorf("stats: %+v", st)
		}
		if files := r.spoolFiles(t); len(files) != 0 {
			t.Errorf("spool files left: %v", files)
		}
	})
	t.Run("rolled back savepoint", func(t *testing.T) {
		before := r.Stats()
		src.Exec(srcDB, "BEGIN; "+insert(100001, 110000)+"; SAVEPOINT s; "+insert(110001, 130000)+
			"; ROLLBACK TO SAVEPOINT s; "+insert(130001, 135000)+"; COMMIT")
		body, _ := r.txn(t)
		expectIDs(t, body, [2]int{100001, 110000}, [2]int{130001, 135000})
		waitFor(t, "the streamed transaction counted", func() bool { return r.Stats().StreamedTxns >= before.StreamedTxns+1 })
		if st := r.Stats(); st.StreamedTxns != before.StreamedTxns+1 {
			t.Errorf("streamed transactions: %d, want %d", st.StreamedTxns, before.StreamedTxns+1)
		}
	})
	t.Run("aborted transaction", func(t *testing.T) {
		before := r.Stats()
		src.Exec(srcDB, "BEGIN; "+insert(200001, 230000)+"; ROLLBACK", "INSERT INTO marker VALUES (1)")
		body, _ := r.txn(t)
		if len(body) != 1 || body[0].Rel.Name != "marker" {
			t.Fatalf("after an aborted transaction: got %v, want the marker insert", kinds(body))
		}
		waitFor(t, "the marker transaction counted", func() bool { return r.Stats().Transactions > before.Transactions })
		st := r.Stats()
		if st.SpooledBytes == before.SpooledBytes || st.SpoolBytes != 0 || st.StreamedTxns != before.StreamedTxns {
			t.Errorf("stats before %+v, after %+v", before, st)
		}
		if files := r.spoolFiles(t); len(files) != 0 {
			t.Errorf("spool files left: %v", files)
		}
	})
	t.Run("regular transaction between stream blocks", func(t *testing.T) {
		ctx := context.Background()
		long := src.Connect(srcDB)
		if _, err := long.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := long.Exec(ctx, insert(300001, 320000)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the open transaction to be spooled", func() bool { return r.Stats().SpoolBytes > 0 })
		src.Exec(srcDB, "INSERT INTO marker VALUES (2)")
		if _, err := long.Exec(ctx, insert(320001, 320010)); err != nil {
			t.Fatal(err)
		}
		if _, err := long.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		first, c1 := r.txn(t)
		if len(first) != 1 || first[0].Rel.Name != "marker" || string(first[0].New[0].Data) != "2" {
			t.Fatalf("first transaction: %v, want the marker insert", kinds(first))
		}
		second, c2 := r.txn(t)
		expectIDs(t, second, [2]int{300001, 320010})
		if c2.CommitLSN <= c1.CommitLSN {
			t.Errorf("commit order: %s then %s", c1.CommitLSN, c2.CommitLSN)
		}
	})
}
