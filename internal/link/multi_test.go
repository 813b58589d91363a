package link

import (
	"fmt"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
)

// TestTwoLinksOneTarget runs two links from two databases of one source
// server into one target server, at the same time.
func TestTwoLinksOneTarget(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	var links []*testLink
	for i, db := range []string{"east", "west"} {
		src.CreateDB(db)
		src.Exec(db, `CREATE TABLE public.items (id int PRIMARY KEY, v text)`,
			fmt.Sprintf(`INSERT INTO public.items SELECT g, '%s' || g FROM generate_series(1, %d) g`, db, 1000*(i+1)))
		links = append(links, startTestLink(t, Config{Name: db, Source: src.URL(db), Target: dst.URL(db + "_copy")}))
	}
	for _, l := range links {
		waitPhase(t, l, "replicating", time.Minute)
	}
	for _, db := range []string{"east", "west"} {
		src.Exec(db, `UPDATE public.items SET v = v || '!' WHERE id % 3 = 0`, `DELETE FROM public.items WHERE id % 7 = 0`,
			`INSERT INTO public.items SELECT g, 'new' FROM generate_series(100000, 100100) g`)
	}
	for i, db := range []string{"east", "west"} {
		waitCaughtUp(t, links[i], src, db, time.Minute)
		assertSame(t, src, dst, db, db+"_copy")
	}
	if got := src.QueryString("postgres", "SELECT count(*) FROM pg_replication_slots WHERE active"); got != "2" {
		t.Errorf("active slots on the source = %s, want 2", got)
	}
}

// TestIdleSourceSlotAdvances checks that heartbeats move the slot of an
// idle database while other databases of the server write WAL, so the
// source does not keep WAL for the link.
func TestIdleSourceSlotAdvances(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("quiet")
	src.CreateDB("busy")
	src.Exec("quiet", `CREATE TABLE public.t (id int PRIMARY KEY)`, `INSERT INTO public.t VALUES (1)`)
	src.Exec("busy", `CREATE TABLE public.noise (id serial PRIMARY KEY, pad text)`)
	l := startTestLink(t, Config{Name: "quiet", Source: src.URL("quiet"), Target: dst.URL("quiet")})
	waitPhase(t, l, "replicating", time.Minute)
	src.Exec("busy", `INSERT INTO public.noise (pad) SELECT repeat('x', 1000) FROM generate_series(1, 20000)`)
	after := src.QueryString("busy", "pg_current_wal_insert_lsn()")
	waitFor(t, "the idle slot to pass "+after, 30*time.Second, l, func() (bool, error) {
		got := src.QueryString("quiet", "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'pglink_quiet'")
		return got != "NULL" && state.ParseLSN(&got) >= state.ParseLSN(&after), nil
	})
	st := linkStatus(t, "quiet", dst.URL("quiet"), src.URL("quiet"))
	if st.LagSeconds == nil || *st.LagSeconds > 5 {
		t.Errorf("idle link lag_seconds = %v, want a small number", st.LagSeconds)
	}
}
