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
	"github.com/pglink/pglink/internal/state"
)

// columnsSQL lists the columns of public.t with their types and defaults,
// and its indexes, as the catalog has them.
const columnsSQL = `(SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || ' ' ||
	coalesce(pg_get_expr(d.adbin, d.adrelid), '-'), ', ' ORDER BY attnum)
	FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	WHERE attrelid = 'public.t'::regclass AND attnum > 0 AND NOT attisdropped) || ' | ' ||
	(SELECT string_agg(indexrelid::regclass::text, ', ' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = 'public.t'::regclass)`

// ddlWriteLoad inserts into and updates public.t until stop is closed, with
// the columns every step of the test keeps (id, v).
func ddlWriteLoad(t *testing.T, src *pgtest.Cluster, stop <-chan struct{}, wg *sync.WaitGroup, writes *atomic.Int64) {
	loopWrites(t, src, stop, wg, writes, func(ctx context.Context, conn *pgx.Conn, i int) error {
		_, err := conn.Exec(ctx, `INSERT INTO public.t (v) VALUES ($1)`, fmt.Sprintf("load %d", i))
		if err == nil {
			_, err = conn.Exec(ctx, `UPDATE public.t SET v = v || '+' WHERE id = (SELECT max(id) - 3 FROM public.t)`)
		}
		return err
	})
}

// loopWrites runs write on a session of its own in database app of src,
// every 2 ms, until stop is closed, counting the writes; the first error
// fails the test and ends it.
func loopWrites(t *testing.T, src *pgtest.Cluster, stop <-chan struct{}, wg *sync.WaitGroup, writes *atomic.Int64,
	write func(ctx context.Context, conn *pgx.Conn, i int) error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn := src.Connect("app")
		ctx := context.Background()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := write(ctx, conn, i); err != nil {
				t.Errorf("write load: %v", err)
				return
			}
			writes.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
}

// TestDDLCarried changes the schema of a linked table on the source while
// a client writes to it, and checks after each step that the link keeps
// replicating, and at the end that the target has the same columns,
// indexes and rows, and that every schema change is in pglink.history.
// The link is stopped hard right after some of the changes and started
// again: each is applied once ("column already exists" otherwise).
func TestDDLCarried(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id bigserial PRIMARY KEY, v text, n int DEFAULT 1, c0 int)`,
		`INSERT INTO public.t (v, c0) SELECT 'seeded ' || g, g FROM generate_series(1, 500) g`)
	// public.later, created while linked, is left out by the filters.
	cfg := Config{Name: "ddl", Source: src.URL("app"), Target: dst.URL("app"), ExcludeTables: []string{"later"}}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	ddlWriteLoad(t, src, stop, &wg, &writes)
	steps := []struct {
		sql     string
		restart bool // stop the link hard right after, and start it again
	}{
		{sql: `ALTER TABLE public.t ADD COLUMN c1 int DEFAULT 7`, restart: true},
		{sql: `INSERT INTO public.t (v, c1) SELECT 'c1 ' || g, g FROM generate_series(1, 20) g`},
		{sql: `UPDATE public.t SET c1 = id WHERE id % 7 = 0`},
		{sql: `ALTER TABLE public.t DROP COLUMN n`},
		{sql: `ALTER TABLE public.t RENAME COLUMN c1 TO c2`, restart: true},
		{sql: `UPDATE public.t SET c2 = c2 + 1 WHERE id % 5 = 0`},
		{sql: `ALTER TABLE public.t ALTER COLUMN c0 TYPE bigint`},
		{sql: `UPDATE public.t SET c0 = 5000000000 + id WHERE id % 3 = 0`},
		{sql: `CREATE INDEX t_v ON public.t (v)`},
		// A column added and filled in one transaction, with changes
		// before and after it.
		{sql: `BEGIN; INSERT INTO public.t (v) VALUES ('before c3');
			ALTER TABLE public.t ADD COLUMN c3 text;
			UPDATE public.t SET c3 = 'x' || id WHERE id % 4 = 0;
			INSERT INTO public.t (v, c3) VALUES ('after c3', 'y'); COMMIT`, restart: true},
		// Several schema changes in one client string.
		{sql: `ALTER TABLE public.t ADD COLUMN c4 int; INSERT INTO public.t (v, c4) VALUES ('c4', 4);
			ALTER TABLE public.t ADD COLUMN c5 int DEFAULT 5; UPDATE public.t SET c4 = 44 WHERE c4 IS NULL AND id % 9 = 0`},
		// A new table does not break the link; its data is not linked yet.
		{sql: `CREATE TABLE public.later (id int PRIMARY KEY)`},
		{sql: `INSERT INTO public.later VALUES (1)`},
	}
	for i, s := range steps {
		before := writes.Load()
		src.Exec("app", s.sql)
		if s.restart {
			if err := l.stop(); err != nil {
				t.Fatalf("step %d: stop: %v", i, err)
			}
			l = startTestLink(t, cfg)
		}
		waitCaughtUp(t, l, src, "app", time.Minute)
		waitFor(t, "more writes", 10*time.Second, l, func() (bool, error) { return writes.Load() > before+5, nil })
	}
	close(stop)
	wg.Wait()
	waitCaughtUp(t, l, src, "app", time.Minute)
	if got, want := count(t, dst, "app", columnsSQL), count(t, src, "app", columnsSQL); got != want {
		t.Fatalf("columns differ:\nsource %s\ntarget %s", want, got)
	}
	if err := execErr(dst, "app", "SELECT 1 FROM public.later"); err == nil {
		t.Fatal("the new table is on the target, though not linked")
	}
	res, err := compare.Tables(context.Background(), src.Connect("app"), dst.Connect("app"), []string{"public.t"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Equal() || res.Rows < 500 {
		t.Fatalf("source and target differ:\n%s", res.String())
	}
	if got := count(t, dst, "app", `SELECT count(*) FROM pglink.history WHERE link = 'ddl' AND event = 'ddl_applied' AND source_lsn IS NOT NULL`); got != "8" {
		t.Fatalf("pglink.history holds %s applied schema changes, want 8", got)
	}
	if got := count(t, dst, "app", `SELECT count(*) FROM pglink.history WHERE link = 'ddl' AND event = 'ddl_ignored' AND detail LIKE 'CREATE TABLE public.later%'`); got != "1" {
		t.Fatalf("pglink.history holds %s records of the new table left out, want 1", got)
	}
	st := linkStatus(t, "ddl", dst.URL("app"), "")
	if string(st.Phase) != "replicating" {
		t.Fatalf("phase %s, last error %v", st.Phase, st.LastError)
	}
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	if err := dropLink(cfg); err != nil {
		t.Fatal(err)
	}
	if got := count(t, src, "app", `SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'pglink%'`); got != "0" {
		t.Fatalf("%s event triggers of pglink left on the source after drop", got)
	}
	if got := count(t, src, "app", `SELECT count(*) FROM pg_namespace WHERE nspname = 'pglink'`); got != "0" {
		t.Fatal("schema pglink left on the source after drop")
	}
}

// TestDDLCaptureNeverFailsSource breaks the link's capture on the source:
// the source's schema changes still succeed, with a warning.
func TestDDLCaptureNeverFailsSource(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id int PRIMARY KEY)`, `INSERT INTO public.t VALUES (1)`)
	l := startTestLink(t, Config{Name: "cap", Source: src.URL("app"), Target: dst.URL("app")})
	waitPhase(t, l, "replicating", time.Minute)
	if got := count(t, src, "app", `SELECT count(*) FROM pg_event_trigger WHERE evtname IN ('pglink_ddl_cap', 'pglink_ddl_drop_cap')`); got != "2" {
		t.Fatalf("%s of the 2 event triggers of the capture on the source", got)
	}
	// Without its key the capture fails inside.
	src.Exec("app", `DELETE FROM pglink.ddl_keys`)
	if err := execErr(src, "app", `ALTER TABLE public.t ADD COLUMN c int`); err != nil {
		t.Fatalf("the source's schema change failed with a broken capture: %v", err)
	}
	if err := execErr(src, "app", `DROP TABLE public.t`); err != nil {
		t.Fatalf("the source's DROP failed with a broken capture: %v", err)
	}
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
}

func dropLink(cfg Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return state.Drop(ctx, cfg.Name, cfg.Source, cfg.Target, nil)
}

// TestDDLStop holds the link before a schema change with --ddl stop, and
// goes on with pglink resume-ddl: --apply runs it, --skip leaves it out
// (the target then needs it by hand, here done before the skip).
func TestDDLStop(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id int PRIMARY KEY, v text)`, `INSERT INTO public.t VALUES (1, 'a')`)
	cfg := Config{Name: "stop", Source: src.URL("app"), Target: dst.URL("app"), DDL: state.DDLStop}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)
	resume := func(decision string) {
		t.Helper()
		waitFor(t, "the link to hold", time.Minute, l, func() (bool, error) {
			return count(t, dst, "app", `SELECT count(*) FROM pglink.ddl_held WHERE decision IS NULL`) == "1", nil
		})
		st := linkStatus(t, "stop", dst.URL("app"), "")
		if !contains(st.LastError, "held by --ddl stop", "ALTER TABLE public.t") || !contains(st.Remedy, "resume-ddl") {
			t.Fatalf("last error %q, remedy %q", st.LastError, st.Remedy)
		}
		conn := dst.Connect("app")
		if _, err := state.ResumeDDL(context.Background(), conn, "stop", decision); err != nil {
			t.Fatal(err)
		}
	}
	src.Exec("app", `ALTER TABLE public.t ADD COLUMN c int DEFAULT 3`, `INSERT INTO public.t VALUES (2, 'b', 4)`)
	resume(state.ResumeApply)
	waitCaughtUp(t, l, src, "app", time.Minute)

	src.Exec("app", `ALTER TABLE public.t ADD COLUMN d int`, `INSERT INTO public.t VALUES (3, 'c', 5, 6)`)
	resume(state.ResumeSkip)
	// Skipped: the link stops at the next row that needs the column, until
	// the target has it.
	time.Sleep(2 * time.Second)
	dst.Exec("app", `BEGIN READ WRITE; SET LOCAL session_replication_role = replica; ALTER TABLE public.t ADD COLUMN d int; COMMIT`)
	waitCaughtUp(t, l, src, "app", 2*time.Minute)
	assertSame(t, src, dst, "app", "app")
	if got := count(t, dst, "app", `SELECT string_agg(event::text, ',' ORDER BY at) FROM pglink.history WHERE event LIKE 'ddl%'`); got != "ddl_applied,ddl_skipped" {
		t.Fatalf("history %s", got)
	}
}

// runningLoad is a write load started by startLoad: halt stops it and
// waits for it, and runs again at the test's end if the test did not.
type runningLoad struct {
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	writes atomic.Int64
}

// startLoad starts one of the write loads (ddlWriteLoad,
// partitionWriteLoad) on the source.
func startLoad(t *testing.T, src *pgtest.Cluster, load func(*testing.T, *pgtest.Cluster, <-chan struct{}, *sync.WaitGroup, *atomic.Int64)) *runningLoad {
	w := &runningLoad{stop: make(chan struct{})}
	load(t, src, w.stop, &w.wg, &w.writes)
	t.Cleanup(w.halt)
	return w
}

func (w *runningLoad) halt() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}
