package state

import (
	"context"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestUnguardGivesWayToDeadlock removes a link's guard while another
// session holds the second guarded table and then asks for the first,
// which the removal has locked: a deadlock, and the server ends the
// removal, which waited first. The removal runs again once the other
// session has its locks, and succeeds: both tables lose the guard.
func TestUnguardGivesWayToDeadlock(t *testing.T) {
	tgt := pgtest.Start(t, pgtest.Options{})
	tgt.CreateDB("app")
	trig := NamesFor("dl").Trigger
	tgt.Exec("app", `CREATE TABLE public.t1 (id int)`, `CREATE TABLE public.t2 (id int)`,
		`CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'read-only'; END$$`,
		`CREATE TRIGGER `+trig+` BEFORE INSERT ON public.t1 FOR EACH STATEMENT EXECUTE FUNCTION public.refuse()`,
		`CREATE TRIGGER `+trig+` BEFORE INSERT ON public.t2 FOR EACH STATEMENT EXECUTE FUNCTION public.refuse()`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	other := tgt.Connect("app")
	conn := tgt.Connect("app")

	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE public.t2 IN ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- UnguardTables(ctx, conn, NamesFor("dl"), true) }()
	waitForLockWait(t, tgt, "app", "public.t2", "the guard's removal")
	// Waits for t1, which the removal holds: the server ends the removal
	// after deadlock_timeout (it waited first), and this lock is granted.
	if _, err := tx.Exec(ctx, `LOCK TABLE public.t1 IN ROW EXCLUSIVE MODE`); err != nil {
		t.Fatalf("the other session's lock: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the guard's removal after a deadlock: %v", err)
	}
	if got := tgt.QueryString("app", `SELECT count(*) FROM pg_trigger WHERE tgname = '`+trig+`'`); got != "0" {
		t.Fatalf("%s guard triggers left", got)
	}
}

// waitForLockWait waits until a session waits for a lock on rel.
func waitForLockWait(t *testing.T, c *pgtest.Cluster, db, rel, who string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c.QueryString(db, `SELECT count(*) FROM pg_locks WHERE relation = '`+rel+`'::regclass AND NOT granted`) == "1" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never waited for the lock on %s", who, rel)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
