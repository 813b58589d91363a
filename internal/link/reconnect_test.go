package link

import (
	"context"
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
