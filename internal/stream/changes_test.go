package stream

import (
	"slices"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/change"
)

func kinds(cs []*change.Change) []change.Kind {
	var ks []change.Kind
	for _, c := range cs {
		ks = append(ks, c.Kind)
	}
	return ks
}

// expectTxn reads one transaction and checks the kinds of its changes.
func expectTxn(t *testing.T, r *running, want ...change.Kind) []*change.Change {
	t.Helper()
	body, _ := r.txn(t)
	if got := kinds(body); !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
	return body
}

func expectValues(t *testing.T, what string, got change.Tuple, want ...string) {
	t.Helper()
	if g := text(got); !slices.Equal(g, want) {
		t.Errorf("%s: got %q, want %q", what, g, want)
	}
}

func TestEveryChangeKind(t *testing.T) {
	t.Parallel()
	src := newSource(t,
		"CREATE TABLE t1 (id int PRIMARY KEY, v text, big text)",
		"ALTER TABLE t1 ALTER COLUMN big SET STORAGE EXTERNAL", // toasted, not compressed
		"CREATE TABLE tfull (id int, v text)",
		"ALTER TABLE tfull REPLICA IDENTITY FULL",
		"CREATE TABLE parent (id int PRIMARY KEY)",
		"CREATE TABLE child (id int PRIMARY KEY, pid int REFERENCES parent)",
		"CREATE TABLE seq (id serial PRIMARY KEY)",
	)
	src.createSlot("kinds")
	r := src.stream("kinds", 100, nil)
	big := strings.Repeat("x", 10000)

	src.Exec(srcDB, "INSERT INTO t1 VALUES (1, 'a', repeat('x', 10000))")
	ins := expectTxn(t, r, change.Insert)[0]
	expectValues(t, "insert", ins.New, "1", "a", big)
	rel := ins.Rel
	if rel.Schema != "public" || rel.Name != "t1" || rel.ReplicaIdentity != change.IdentityDefault {
		t.Errorf("relation %+v", rel)
	}
	if got := rel.Columns; len(got) != 3 || got[0].Name != "id" || !got[0].Key || got[1].Key || got[2].TypeOID != 25 {
		t.Errorf("columns %+v", got)
	}

	t.Run("update keeps unchanged TOAST value", func(t *testing.T) {
		src.Exec(srcDB, "UPDATE t1 SET v = 'b' WHERE id = 1")
		up := expectTxn(t, r, change.Update)[0]
		if up.Old != nil {
			t.Errorf("old row sent for an update that kept the key: %q", text(up.Old))
		}
		expectValues(t, "new", up.New, "1", "b", "<unchanged>")
	})
	t.Run("update of the key sends the old key", func(t *testing.T) {
		src.Exec(srcDB, "UPDATE t1 SET id = 2 WHERE id = 1")
		up := expectTxn(t, r, change.Update)[0]
		expectValues(t, "old", up.Old, "1", "<null>", "<null>")
		expectValues(t, "new", up.New, "2", "b", "<unchanged>")
	})
	t.Run("replica identity full", func(t *testing.T) {
		src.Exec(srcDB, "BEGIN; INSERT INTO tfull VALUES (1, 'a'); UPDATE tfull SET v = 'b'; DELETE FROM tfull; COMMIT")
		cs := expectTxn(t, r, change.Insert, change.Update, change.Delete)
		if cs[0].Rel.ReplicaIdentity != change.IdentityFull || !cs[0].Rel.Columns[1].Key {
			t.Errorf("relation %+v", cs[0].Rel)
		}
		expectValues(t, "update old", cs[1].Old, "1", "a")
		expectValues(t, "update new", cs[1].New, "1", "b")
		expectValues(t, "delete old", cs[2].Old, "1", "b")
		if cs[2].New != nil {
			t.Errorf("delete with a new row")
		}
	})
	t.Run("delete sends the key", func(t *testing.T) {
		src.Exec(srcDB, "DELETE FROM t1 WHERE id = 2")
		del := expectTxn(t, r, change.Delete)[0]
		expectValues(t, "old", del.Old, "2", "<null>", "<null>")
	})
	t.Run("multi-table transaction in order, with a message", func(t *testing.T) {
		src.Exec(srcDB, `BEGIN;
			INSERT INTO t1 VALUES (10, 'm', NULL);
			INSERT INTO tfull VALUES (10, 'm');
			SELECT pg_logical_emit_message(true, 'pglink', 'heartbeat 1');
			SELECT pg_logical_emit_message(false, 'pglink', 'not transactional');
			INSERT INTO t1 VALUES (11, NULL, 'y');
			COMMIT`)
		cs := expectTxn(t, r, change.Insert, change.Insert, change.Message, change.Insert)
		expectValues(t, "first", cs[0].New, "10", "m", "<null>")
		if cs[1].Rel.Name != "tfull" || cs[0].Rel.Name != "t1" {
			t.Errorf("tables %s, %s", cs[0].Rel.Name, cs[1].Rel.Name)
		}
		if cs[2].Prefix != "pglink" || string(cs[2].Content) != "heartbeat 1" {
			t.Errorf("message %q %q", cs[2].Prefix, cs[2].Content)
		}
		expectValues(t, "last", cs[3].New, "11", "<null>", "y")
	})
	t.Run("truncate", func(t *testing.T) {
		src.Exec(srcDB, "INSERT INTO parent VALUES (1)", "INSERT INTO child VALUES (1, 1)")
		expectTxn(t, r, change.Insert)
		expectTxn(t, r, change.Insert)
		src.Exec(srcDB, "TRUNCATE parent CASCADE")
		tr := expectTxn(t, r, change.Truncate)[0]
		var names []string
		for _, rel := range tr.Truncated {
			names = append(names, rel.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"child", "parent"}) || !tr.Cascade || tr.RestartIdentity {
			t.Errorf("truncate %v cascade=%v restart=%v", names, tr.Cascade, tr.RestartIdentity)
		}
		src.Exec(srcDB, "TRUNCATE seq RESTART IDENTITY")
		tr = expectTxn(t, r, change.Truncate)[0]
		if len(tr.Truncated) != 1 || tr.Truncated[0].Name != "seq" || tr.Cascade || !tr.RestartIdentity {
			t.Errorf("truncate %+v", tr)
		}
	})
	t.Run("a new announcement makes a new relation", func(t *testing.T) {
		src.Exec(srcDB, "ALTER TABLE t1 ADD COLUMN w int", "INSERT INTO t1 VALUES (20, 'n', NULL, 7)")
		ins := expectTxn(t, r, change.Insert)[0]
		if ins.Rel == rel || len(rel.Columns) != 3 || len(ins.Rel.Columns) != 4 {
			t.Errorf("relation reused or changed: old %d columns, new %d", len(rel.Columns), len(ins.Rel.Columns))
		}
		expectValues(t, "insert", ins.New, "20", "n", "<null>", "7")
	})
	if st := r.Stats(); st.Transactions < 10 || st.Changes < 14 || st.ReceivedLSN == 0 || st.LastMessage.IsZero() {
		t.Errorf("stats %+v", st)
	}
}
