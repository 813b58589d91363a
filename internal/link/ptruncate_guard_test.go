package link

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestTruncateGuarded runs the target's side of a partition's TRUNCATE
// against what the target holds: a relation of the link (guarded, or a
// partition of a guarded table) is truncated, with the guarded tables
// that refer to it; any other name the source sends, a table the link
// does not guard, or one that a table outside the link refers to, is
// refused and nothing is truncated.
func TestTruncateGuarded(t *testing.T) {
	dst := pgtest.Start(t, pgtest.Options{})
	dst.CreateDB("app")
	dst.Exec("app", `CREATE SCHEMA pglink`, `CREATE TABLE pglink.guards (link text, rel oid)`,
		`CREATE TABLE public.ev (id int, k int, PRIMARY KEY (id, k)) PARTITION BY LIST (k)`,
		`CREATE TABLE public.ev_1 PARTITION OF public.ev FOR VALUES IN (1)`,
		`CREATE TABLE public.ev_2 PARTITION OF public.ev FOR VALUES IN (2)`,
		`CREATE TABLE public.refs (id int, k int, FOREIGN KEY (id, k) REFERENCES public.ev)`,
		`CREATE TABLE public.other (id int)`,
		`INSERT INTO pglink.guards SELECT 'l', oid FROM pg_class WHERE oid IN ('public.ev'::regclass, 'public.ev_1'::regclass)`,
		`INSERT INTO public.ev VALUES (1, 1), (2, 2)`, `INSERT INTO public.other VALUES (1)`)
	run := func(schema, name string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn := dst.Connect("app")
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SELECT set_config('pglink.truncate_schema', $1, true), set_config('pglink.truncate_name', $2, true)`, schema, name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, truncateGuardedSQL("l")); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	for _, name := range []string{"other", "nothere", "other; DROP TABLE public.other", "x$t$", "ev_1_pkey"} {
		if err := run("public", name); err == nil || !strings.Contains(err.Error(), "no such table of link l") {
			t.Errorf("TRUNCATE of %s: %v, want it refused", name, err)
		}
	}
	// public.refs refers to ev_2 (through ev) and is not the link's.
	if err := run("public", "ev_2"); err == nil || !strings.Contains(err.Error(), "no such table of link l") {
		t.Errorf("TRUNCATE of ev_2, which a table outside the link refers to: %v, want it refused", err)
	}
	if got := count(t, dst, "app", `SELECT count(*) FROM public.ev`); got != "2" {
		t.Fatalf("a refused TRUNCATE emptied %s rows of public.ev", got)
	}
	dst.Exec("app", `INSERT INTO pglink.guards VALUES ('l', 'public.refs'::regclass)`, `INSERT INTO public.refs VALUES (2, 2)`)
	if err := run("public", "ev_2"); err != nil {
		t.Fatalf("TRUNCATE of a partition of a guarded table: %v", err)
	}
	if got := count(t, dst, "app", `SELECT (SELECT count(*) FROM public.ev) || ' ' || (SELECT count(*) FROM public.refs) || ' ' || (SELECT count(*) FROM public.other)`); got != "1 0 1" {
		t.Fatalf("after the TRUNCATE of ev_2: ev, refs, other hold %s rows, want 1 0 1", got)
	}
}
