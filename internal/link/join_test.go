package link

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/compare"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/status"
)

// assertTablesSame compares the named tables row by row on both sides.
func assertTablesSame(t *testing.T, src, dst *pgtest.Cluster, tables ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := compare.Tables(ctx, src.Connect("app"), dst.Connect("app"), tables)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Equal() {
		t.Fatalf("source and target differ:\n%s", res.String())
	}
}

// tableState returns the state of table public.name of link in
// pglink.tables, or "" when it has no record.
func tableState(t *testing.T, dst *pgtest.Cluster, link, name string) string {
	t.Helper()
	return count(t, dst, "app", fmt.Sprintf(`SELECT coalesce((SELECT state FROM pglink.tables WHERE link = '%s'
		AND table_schema = 'public' AND table_name = '%s'), '')`, link, name))
}

// TestNewTableJoins creates tables on the source while a client writes:
// one created and written in the same transaction and written to after,
// one made by CREATE TABLE AS with rows (its key added in the same
// transaction), and one the link's filters leave out. The first two join
// the link (created on the target, copied, then streamed), the third
// stays out; every linked table has the same rows on both sides.
func TestNewTableJoins(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id bigserial PRIMARY KEY, v text, n int DEFAULT 1, c0 int)`,
		`INSERT INTO public.t (v, c0) SELECT 'seeded ' || g, g FROM generate_series(1, 500) g`,
		`CREATE TABLE public.ev (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k)`,
		`CREATE TABLE public.ev_1 PARTITION OF public.ev FOR VALUES IN (1)`,
		`INSERT INTO public.ev SELECT g, 1, 'seeded' FROM generate_series(1, 50) g`)
	cfg := Config{Name: "join", Source: src.URL("app"), Target: dst.URL("app"), ExcludeTables: []string{"public.skip_*"}}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes, newWrites atomic.Int64
	ddlWriteLoad(t, src, stop, &wg, &writes)

	src.Exec("app", `BEGIN; CREATE TABLE public.n1 (id bigserial PRIMARY KEY, v text);
		INSERT INTO public.n1 (v) SELECT 'first ' || g FROM generate_series(1, 300) g;
		UPDATE public.n1 SET v = v || ' updated' WHERE id % 3 = 0; COMMIT`)
	loopWrites(t, src, stop, &wg, &newWrites, func(ctx context.Context, conn *pgx.Conn, i int) error {
		_, err := conn.Exec(ctx, `INSERT INTO public.n1 (v) VALUES ($1)`, fmt.Sprintf("after %d", i))
		if err == nil {
			_, err = conn.Exec(ctx, `UPDATE public.n1 SET v = v || '+' WHERE id = (SELECT max(id) - 5 FROM public.n1)`)
		}
		if err == nil && i%10 == 0 {
			_, err = conn.Exec(ctx, `DELETE FROM public.n1 WHERE id = (SELECT min(id) FROM public.n1)`)
		}
		return err
	})
	src.Exec("app", `BEGIN; CREATE TABLE public.n2 AS SELECT g AS id, 'ctas ' || g AS v FROM generate_series(1, 20000) g;
		ALTER TABLE public.n2 ADD PRIMARY KEY (id); COMMIT`)
	// A partition of a linked table: created on the target, its rows
	// through its root. A new partitioned table with a partition joins.
	src.Exec("app", `CREATE TABLE public.ev_2 PARTITION OF public.ev FOR VALUES IN (2)`,
		`INSERT INTO public.ev SELECT g, 2, 'two' FROM generate_series(1, 50) g`,
		`BEGIN; CREATE TABLE public.np (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
		CREATE TABLE public.np_1 PARTITION OF public.np FOR VALUES IN (1);
		INSERT INTO public.np SELECT g, 1, 'np' FROM generate_series(1, 70) g; COMMIT`,
		`CREATE TABLE public.np_2 PARTITION OF public.np FOR VALUES IN (2)`,
		`INSERT INTO public.np SELECT g, 2, 'np two' FROM generate_series(1, 30) g`)
	src.Exec("app", `CREATE TABLE public.skip_me (id int PRIMARY KEY, v text)`, `INSERT INTO public.skip_me VALUES (1, 'out')`)
	src.Exec("app", `UPDATE public.n2 SET v = v || ' changed' WHERE id % 7 = 0`, `INSERT INTO public.n2 VALUES (20001, 'after')`)

	waitFor(t, "the new tables to join", 2*time.Minute, l, func() (bool, error) {
		return tableState(t, dst, "join", "n1") == "copied" && tableState(t, dst, "join", "n2") == "copied" &&
			tableState(t, dst, "join", "np") == "copied", nil
	})
	before := newWrites.Load()
	waitFor(t, "more writes to the new table", 10*time.Second, l, func() (bool, error) { return newWrites.Load() > before+20, nil })
	src.Exec("app", `DELETE FROM public.n2 WHERE id % 11 = 0`)
	close(stop)
	wg.Wait()
	waitCaughtUp(t, l, src, "app", time.Minute)

	assertTablesSame(t, src, dst, "public.t", "public.n1", "public.n2", "public.ev", "public.np")
	if got := count(t, dst, "app", `SELECT count(*) FROM public.ev_2`) + count(t, dst, "app", `SELECT count(*) FROM public.np_2`); got != "5030" {
		t.Fatalf("the new partitions hold %s rows on the target, want 50 and 30", got)
	}
	if got := count(t, dst, "app", `SELECT count(*) FROM public.n2`); got == "0" {
		t.Fatal("the CREATE TABLE AS table is empty on the target")
	}
	if err := execErr(dst, "app", "SELECT 1 FROM public.skip_me"); err == nil {
		t.Fatal("the table the filters leave out is on the target")
	}
	if got := count(t, dst, "app", `SELECT count(*) FROM pglink.history WHERE link = 'join' AND event = 'ddl_ignored' AND detail LIKE 'CREATE TABLE public.skip_me%'`); got != "1" {
		t.Fatalf("pglink.history holds %s records of the table left out, want 1", got)
	}
	if got := count(t, dst, "app", `SELECT count(*) FROM pglink.history WHERE link = 'join' AND event = 'table_joined'`); got != "3" {
		t.Fatalf("pglink.history holds %s tables joined, want 3", got)
	}
	if got := count(t, src, "app", `SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = 'pglink_join'`); got != "ev,n1,n2,np,t" {
		t.Fatalf("the link's publication holds %s, want ev,n1,n2,np,t", got)
	}
	// The new tables are guarded on the target like the seeded ones.
	if err := execErr(dst, "app", `BEGIN READ WRITE; INSERT INTO public.n1 (v) VALUES ('by hand'); COMMIT`); err == nil {
		t.Fatalf("a client wrote into a joined table on the target; triggers %s, guards %s", count(t, dst, "app", `SELECT coalesce(string_agg(tgname || ' ' || tgenabled::text || ' ' || tgrelid::regclass::text, ', '), 'none') FROM pg_trigger WHERE tgname LIKE 'pglink%'`),
			count(t, dst, "app", `SELECT string_agg(rel::regclass::text, ',') FROM pglink.guards`))
	}
	st := linkStatus(t, "join", dst.URL("app"), "")
	if string(st.Phase) != "replicating" || st.LastError != "" {
		t.Fatalf("phase %s, last error %q", st.Phase, st.LastError)
	}
	joined := 0
	for _, tb := range st.Tables {
		if (tb.Name == "public.n1" || tb.Name == "public.n2") && tb.State == "copied" && tb.SyncLSN != "" {
			joined++
		}
	}
	if joined != 2 {
		t.Fatalf("status shows %d of the 2 new tables copied with a sync LSN: %+v", joined, st.Tables)
	}
}

// TestNewTableJoinKilled kills the pglink process (SIGKILL) while the copy
// of a table created on the source runs, under writes to it and to a
// seeded table; the next process copies it again from a new snapshot,
// and no row is lost or doubled.
func TestNewTableJoinKilled(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id bigserial PRIMARY KEY, v text, n int DEFAULT 1, c0 int)`,
		`INSERT INTO public.t (v) SELECT 'seeded ' || g FROM generate_series(1, 100) g`)
	p := startProcess(t, "jk", src.URL("app"), dst.URL("app"))
	waitProcessPhase(t, p, "jk", dst, "replicating")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes, bigWrites atomic.Int64
	ddlWriteLoad(t, src, stop, &wg, &writes)
	src.Exec("app", `BEGIN; CREATE TABLE public.big AS SELECT g::bigint AS id, repeat('x', 100) || g AS v FROM generate_series(1, 1000000) g;
		ALTER TABLE public.big ADD PRIMARY KEY (id); COMMIT`)
	loopWrites(t, src, stop, &wg, &bigWrites, func(ctx context.Context, conn *pgx.Conn, i int) error {
		_, err := conn.Exec(ctx, `INSERT INTO public.big VALUES ($1, 'new')`, 2000000+i)
		if err == nil {
			_, err = conn.Exec(ctx, `UPDATE public.big SET v = 'changed' WHERE id = $1`, 1+i*7)
		}
		return err
	})

	// Kill the process once the target's COPY of the new table runs.
	deadline := time.Now().Add(3 * time.Minute)
	for count(t, dst, "app", `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pglink join jk' AND query ILIKE 'COPY%'`) == "0" {
		if time.Now().After(deadline) {
			t.Fatal("the copy of the new table did not start")
		}
		if done, out := p.exited(); done {
			t.Fatalf("pglink stopped:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := linkStatus(t, "jk", dst.URL("app"), "")
	if string(st.Phase) != "replicating" || tableState(t, dst, "jk", "big") != "copying" {
		t.Fatalf("during the copy: phase %s, table big %s", st.Phase, tableState(t, dst, "jk", "big"))
	}
	p.kill()
	if got := tableState(t, dst, "jk", "big"); got == "copied" {
		t.Fatal("the copy was done before the kill; make it longer")
	}
	time.Sleep(time.Second)
	p = startProcess(t, "jk", src.URL("app"), dst.URL("app"))
	waitFor(t, "the new table to join", 3*time.Minute, nil, func() (bool, error) {
		if done, out := p.exited(); done {
			return false, fmt.Errorf("pglink stopped:\n%s", out)
		}
		return tableState(t, dst, "jk", "big") == "copied", nil
	})
	before := bigWrites.Load()
	waitFor(t, "more writes", 10*time.Second, nil, func() (bool, error) { return bigWrites.Load() > before+10, nil })
	close(stop)
	wg.Wait()
	waitProcessCaughtUp(t, p, "jk", src, dst)
	assertTablesSame(t, src, dst, "public.t", "public.big")
	if got := count(t, src, "app", `SELECT count(*) FROM pg_replication_slots WHERE slot_name <> 'pglink_jk'`); got != "0" {
		t.Fatalf("%s slots besides the link's on the source", got)
	}
}

// waitProcessPhase waits until link name of process p is in phase.
func waitProcessPhase(t *testing.T, p *process, name string, dst *pgtest.Cluster, phase string) {
	t.Helper()
	waitFor(t, "phase "+phase, 2*time.Minute, nil, func() (bool, error) {
		if done, out := p.exited(); done {
			return false, fmt.Errorf("pglink stopped:\n%s", out)
		}
		st, err := status.Read(context.Background(), name, dst.URL("app"), "")
		return err == nil && string(st.Phase) == phase, nil
	})
}

// waitProcessCaughtUp waits until the target applied what the source
// had written when it was called.
func waitProcessCaughtUp(t *testing.T, p *process, name string, src, dst *pgtest.Cluster) {
	t.Helper()
	lsn := src.QueryString("app", "pg_current_wal_insert_lsn()")
	waitFor(t, "target to apply up to "+lsn, 2*time.Minute, nil, func() (bool, error) {
		if done, out := p.exited(); done {
			return false, fmt.Errorf("pglink stopped:\n%s", out)
		}
		return count(t, dst, "app", `SELECT coalesce((SELECT applied_lsn >= '`+lsn+`' FROM pglink.progress WHERE link = '`+name+`'), false)`) == "true", nil
	})
}
