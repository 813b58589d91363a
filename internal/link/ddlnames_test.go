package link

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/validate"
)

// TestDDLRenameAndDropTable renames a linked table and drops another on the
// source while a client writes: the link's records on the target
// (pglink.tables, pglink.guards) follow in the same transaction, so
// status, validate and a restart know the table by its new name, and
// nothing of the dropped one is left to trouble them.
func TestDDLRenameAndDropTable(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id bigserial PRIMARY KEY, v text)`,
		`CREATE TABLE public.old (id int PRIMARY KEY, v text)`,
		`CREATE TABLE public.gone (id int PRIMARY KEY)`,
		`INSERT INTO public.t (v) SELECT 'seeded ' || g FROM generate_series(1, 200) g`,
		`INSERT INTO public.old SELECT g, 'old ' || g FROM generate_series(1, 200) g`,
		`INSERT INTO public.gone SELECT generate_series(1, 50)`)
	// Named one by one: the renamed table stays in the link by its new name.
	cfg := Config{Name: "names", Source: src.URL("app"), Target: dst.URL("app"), Tables: []string{"public.t", "public.old", "public.gone"}}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	ddlWriteLoad(t, src, stop, &wg, &writes)
	// A second writer follows the renamed table by whatever name it has.
	loopWrites(t, src, stop, &wg, &writes, func(ctx context.Context, conn *pgx.Conn, i int) error {
		_, err := conn.Exec(ctx, fmt.Sprintf(`DO $$ BEGIN INSERT INTO public.old VALUES (%[1]d, 'w');
			EXCEPTION WHEN undefined_table THEN INSERT INTO public.renamed VALUES (%[1]d, 'w'); END $$`, 1000+i))
		return err
	})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	tablesSQL := `SELECT string_agg(table_schema || '.' || table_name, ',' ORDER BY table_schema, table_name) FROM pglink.tables WHERE link = 'names'`
	guardsSQL := `SELECT count(*) FROM pglink.guards g WHERE link = 'names' AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = g.rel)`
	check := func(step, wantTables string) {
		t.Helper()
		waitCaughtUp(t, l, src, "app", time.Minute)
		if got := count(t, dst, "app", tablesSQL); got != wantTables {
			t.Fatalf("%s: pglink.tables lists %s, want %s", step, got, wantTables)
		}
		if got := count(t, dst, "app", guardsSQL); got != "0" {
			t.Fatalf("%s: pglink.guards holds %s relations the target no longer has", step, got)
		}
		if got := count(t, dst, "app", `SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.renamed'::regclass AND tgname = 'pglink_read_only_names'`); got != "1" {
			t.Fatalf("%s: the renamed table is not guarded on the target", step)
		}
		st := linkStatus(t, "names", dst.URL("app"), "")
		if string(st.Phase) != "replicating" || st.LastError != "" || len(st.Warnings) > 0 {
			t.Fatalf("%s: phase %s, last error %q, warnings %v", step, st.Phase, st.LastError, st.Warnings)
		}
		rep, err := validate.Link(context.Background(), validate.LinkOptions{Name: "names", Source: cfg.Source, Target: cfg.Target})
		if err != nil {
			t.Fatalf("%s: validate: %v", step, err)
		}
		var b strings.Builder
		rep.WriteTable(&b)
		if !rep.Equal() || len(rep.Warnings) > 0 {
			t.Fatalf("%s: validate:\n%s\nwarnings %v", step, b.String(), rep.Warnings)
		}
		if len(rep.Tables) != len(strings.Split(wantTables, ",")) || strings.Contains(b.String(), "public.old") {
			t.Fatalf("%s: validate compared:\n%s", step, b.String())
		}
	}

	time.Sleep(500 * time.Millisecond)
	src.Exec("app", `ALTER TABLE public.old RENAME TO renamed`)
	check("renamed", "public.gone,public.renamed,public.t")
	if err := l.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	l = startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)
	check("renamed, restarted", "public.gone,public.renamed,public.t")

	src.Exec("app", `DROP TABLE public.gone`)
	check("dropped", "public.renamed,public.t")
	if err := l.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	l = startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)
	before := writes.Load()
	waitFor(t, "more writes", 30*time.Second, l, func() (bool, error) { return writes.Load() > before+20, nil })
	close(stop)
	wg.Wait()
	check("dropped, restarted", "public.renamed,public.t")
	assertSame(t, src, dst, "app", "app")
}
