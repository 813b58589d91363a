package apply

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestKeyLookupsUseIndex runs on a cluster of its own: TestApply's
// databases already hold as many replication origins as a cluster has
// state slots for (max_replication_slots).
func TestKeyLookupsUseIndex(t *testing.T) {
	testKeyLookupsUseIndex(t, pgtest.Start(t, pgtest.Options{}))
}

// testKeyLookupsUseIndex applies one batch that updates the rows of a
// one-page table again and again, and deletes one: every row is found
// through the key's index, never by scanning the table, which the planner
// picks for so small a table and which the batch's own row versions make
// longer with each update.
func testKeyLookupsUseIndex(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE small (id int PRIMARY KEY, n int)`,
		`INSERT INTO small SELECT g, 0 FROM generate_series(1, 5) g`, `ANALYZE small`)
	r := rel("public", "small", change.IdentityDefault, "id*", "n")
	seq0, idx0 := e.scans(t, "small", 0)
	var txns [][]*change.Change
	for i := range 200 {
		txns = append(txns, txn(change.LSN(0x1000+i*0x100), upd(r, nil, fmt.Sprint(i%5+1), fmt.Sprint(i))))
	}
	txns = append(txns, txn(0x100000, del(r, "5", nil)))
	if st := e.mustRun(t, Options{MaxBatchDelay: time.Hour, RowByRow: true}, txns...).Stats(); st.Batches != 1 {
		t.Errorf("stats = %+v, want one batch", st)
	}
	if _, err := e.conn.Exec(context.Background(), `SELECT pg_stat_force_next_flush()`); err != nil {
		t.Fatal(err)
	}
	seq, idx := e.scans(t, "small", idx0+201)
	if seq != seq0 || idx < idx0+201 {
		t.Errorf("scans of small while applying: %d sequential, %d by index; want 0 sequential, 201 by index", seq-seq0, idx-idx0)
	}
	e.expect(t, `SELECT string_agg(id || '=' || n, ' ' ORDER BY id) FROM small`, "1=195 2=196 3=197 4=198")
}

// scans returns the table's sequential and index scan counts, waiting up
// to 10 s for the index scans to reach minIdx (statistics arrive late).
func (e *env) scans(t *testing.T, table string, minIdx int64) (seq, idx int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := e.query(t, fmt.Sprintf(`SELECT seq_scan || ' ' || coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = '%s'`, table))
		if _, err := fmt.Sscan(strings.TrimSpace(s), &seq, &idx); err != nil {
			t.Fatalf("scan counts %q: %v", s, err)
		}
		if idx >= minIdx || time.Now().After(deadline) {
			return seq, idx
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFullIdentityNotCompiled checks that a statement without an
// indexable condition (REPLICA IDENTITY FULL), which the apply session's
// settings mark with a huge cost, is not JIT-compiled: compiling costs far
// more than the one row it changes.
func TestFullIdentityNotCompiled(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.CreateDB("full")
	c.Exec("full", `CREATE TABLE d (a int, b text)`, `ALTER TABLE d REPLICA IDENTITY FULL`)
	conn := c.Connect("full")
	ctx := context.Background()
	if err := PrepareSession(ctx, conn); err != nil {
		t.Fatal(err)
	}
	var plan string
	err := conn.QueryRow(ctx, `EXPLAIN (FORMAT JSON) UPDATE ONLY d SET b = 'y'
		WHERE ctid = (SELECT ctid FROM ONLY d WHERE a IS NOT DISTINCT FROM 1 AND b IS NOT DISTINCT FROM 'x' LIMIT 1)`).Scan(&plan)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "Seq Scan") {
		t.Errorf("plan without a sequential scan, the only way to find the row:\n%s", plan)
	}
	if strings.Contains(plan, "JIT") {
		t.Errorf("the statement would be JIT-compiled:\n%s", plan)
	}
}
