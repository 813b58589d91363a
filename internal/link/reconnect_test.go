package link

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestReconnect restarts the source server and ends the target's sessions
// while the link streams: it must resume by itself, losing nothing.
func TestReconnect(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id int PRIMARY KEY, v text)`,
		`INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 1000) g`)
	l := startTestLink(t, Config{Name: "app", Source: src.URL("app"), Target: dst.URL("app")})
	waitPhase(t, l, "replicating", time.Minute)

	ctx := context.Background()
	if err := src.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the link notices and backs off
	if err := src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	src.Exec("app", `UPDATE public.t SET v = 'after source restart' WHERE id <= 100`)
	waitCaughtUp(t, l, src, "app", time.Minute)
	assertSame(t, src, dst, "app", "app")

	dst.Exec("postgres", `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = 'app' AND pid <> pg_backend_pid()`)
	src.Exec("app", `DELETE FROM public.t WHERE id > 900`, `INSERT INTO public.t VALUES (5000, 'after target sessions ended')`)
	waitCaughtUp(t, l, src, "app", time.Minute)
	assertSame(t, src, dst, "app", "app")
	if err := l.failed(); err != nil {
		t.Fatalf("link stopped: %v", err)
	}
}

// TestExistingSchema links into tables the user created on the target.
func TestExistingSchema(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	ddl := `CREATE TABLE public.t (id int PRIMARY KEY, v text, extra_on_source int)`
	src.CreateDB("app")
	src.Exec("app", ddl, `INSERT INTO public.t SELECT g, 'v' || g, g FROM generate_series(1, 5000) g`)
	dst.CreateDB("app")
	dst.Exec("app", `CREATE TABLE public.t (v text, id int PRIMARY KEY, extra_on_source int)`) // other column order
	l := startTestLink(t, Config{Name: "app", Source: src.URL("app"), Target: dst.URL("app"), Schema: SchemaExisting})
	waitPhase(t, l, "replicating", time.Minute)
	src.Exec("app", `UPDATE public.t SET v = 'x' WHERE id % 2 = 0`)
	waitCaughtUp(t, l, src, "app", time.Minute)
	assertSame(t, src, dst, "app", "app")
}

// TestApplySessions runs a link through a backlog with each number of
// apply sessions: the data must end alike either way, and each session
// takes one of the target's replication origin entries, no more.
func TestApplySessions(t *testing.T) {
	// Each case starts the link once per entry, with that many apply
	// sessions, a backlog written before each start.
	for _, runs := range [][]int{{1}, {2}, {2, 1}} {
		t.Run(fmt.Sprint(runs), func(t *testing.T) {
			src := pgtest.Start(t, pgtest.Options{})
			dst := pgtest.Start(t, pgtest.Options{})
			src.CreateDB("app")
			src.Exec("app", `CREATE TABLE public.t (id int PRIMARY KEY, v text)`,
				`INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 1000) g`)
			cfg := Config{Name: "app", Source: src.URL("app"), Target: dst.URL("app"), ApplySessions: runs[0]}
			l := startTestLink(t, cfg)
			waitPhase(t, l, "replicating", time.Minute)
			for n, sessions := range runs {
				if err := l.stop(); err != nil {
					t.Fatal(err)
				}
				var backlog []string // small transactions, applied in batches
				for i := range 3000 {
					backlog = append(backlog, fmt.Sprintf(`UPDATE public.t SET v = 'b%d.%d' WHERE id = %d`, n, i, i%1000+1))
				}
				src.Exec("app", backlog...)
				cfg.ApplySessions = sessions
				l = startTestLink(t, cfg)
				waitCaughtUp(t, l, src, "app", time.Minute)
				assertSame(t, src, dst, "app", "app")
				t.Logf("%d apply sessions: origins at %s", sessions, count(t, dst, "app",
					`SELECT string_agg(external_id || ' ' || remote_lsn, ', ' ORDER BY external_id) FROM pg_replication_origin_status`))
				// Origins with progress hold an entry of the target's
				// max_replication_slots; a link that ran on two sessions
				// and now runs on one has given the second one up.
				want := map[int]string{1: "pglink_app", 2: "pglink_app,pglink_app.2"}[sessions]
				if got := count(t, dst, "app", `SELECT string_agg(external_id, ',' ORDER BY external_id) FROM pg_replication_origin_status`); got != want {
					t.Errorf("origins in use with %d apply sessions: %s, want %s", sessions, got, want)
				}
				if got := count(t, dst, "app", `SELECT string_agg(roname, ',' ORDER BY roname) FROM pg_replication_origin`); got != want {
					t.Errorf("origins with %d apply sessions: %s, want %s", sessions, got, want)
				}
				if err := l.failed(); err != nil {
					t.Fatalf("link stopped: %v", err)
				}
			}
		})
	}
}
