package link

import (
	"context"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/compare"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestDDLDropIndexOutsideLink drops, while linked, an index of a table the
// link leaves out and one of a linked table: the first is left out and
// recorded (the source's catalog no longer says which table it was on, the
// target's does), the second is carried, and the link never holds.
func TestDDLDropIndexOutsideLink(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id bigserial PRIMARY KEY, v text)`,
		`CREATE TABLE public.other (id int PRIMARY KEY, v text)`,
		`CREATE INDEX other_v ON public.other (v)`,
		`INSERT INTO public.t (v) SELECT 'seeded ' || g FROM generate_series(1, 200) g`)
	cfg := Config{Name: "dropidx", Source: src.URL("app"), Target: dst.URL("app"), Tables: []string{"public.t"}}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)

	load := startLoad(t, src, ddlWriteLoad)
	src.Exec("app", `CREATE INDEX t_v ON public.t (v)`)
	waitCaughtUp(t, l, src, "app", time.Minute)
	src.Exec("app", `DROP INDEX public.other_v`, `DROP INDEX public.t_v`)
	before := load.writes.Load()
	waitFor(t, "more writes", 30*time.Second, l, func() (bool, error) { return load.writes.Load() > before+20, nil })
	load.halt()
	waitCaughtUp(t, l, src, "app", time.Minute)

	if got, want := count(t, dst, "app", columnsSQL), count(t, src, "app", columnsSQL); got != want {
		t.Fatalf("columns and indexes differ:\nsource %s\ntarget %s", want, got)
	}
	if got := count(t, dst, "app", `SELECT string_agg(event || ' ' || detail, '; ' ORDER BY at) FROM pglink.history WHERE link = 'dropidx' AND detail LIKE 'DROP INDEX%'`); got != "ddl_ignored DROP INDEX public.other_v -- drops no index of a table the link carries on the target; ddl_applied DROP INDEX public.t_v" {
		t.Fatalf("pglink.history: %s", got)
	}
	if got := count(t, dst, "app", `SELECT count(*) FROM pglink.ddl_held`); got != "0" {
		t.Fatal("the link holds")
	}
	res, err := compare.Tables(context.Background(), src.Connect("app"), dst.Connect("app"), []string{"public.t"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Equal() || res.Rows < 200 {
		t.Fatalf("source and target differ:\n%s", res.String())
	}
	st := linkStatus(t, "dropidx", dst.URL("app"), "")
	if string(st.Phase) != "replicating" || st.LastError != "" {
		t.Fatalf("phase %s, last error %q", st.Phase, st.LastError)
	}
}
