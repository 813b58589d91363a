package state

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestTruncateCaptureRights installs the truncate capture as a role that
// owns the partitioned table but not all of its partitions: the others
// are named, and the link goes on without them. A role that may only
// truncate a partition (it cannot read the link's key) still writes the
// signed message, at its place, and its TRUNCATE never fails. Installing
// again changes nothing, and removing the capture removes every trigger.
func TestTruncateCaptureRights(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE ROLE linker LOGIN PASSWORD 'linkerpw'`, `GRANT CREATE ON DATABASE app TO linker`,
		`CREATE ROLE writer LOGIN PASSWORD 'writerpw'`,
		`CREATE TABLE public.ev (id int, k int) PARTITION BY LIST (k)`,
		`CREATE TABLE public.ev_1 PARTITION OF public.ev FOR VALUES IN (1)`,
		`CREATE TABLE public.ev_2 PARTITION OF public.ev FOR VALUES IN (2)`,
		`ALTER TABLE public.ev OWNER TO linker`, `ALTER TABLE public.ev_1 OWNER TO linker`,
		`GRANT INSERT, TRUNCATE ON public.ev, public.ev_1, public.ev_2 TO writer`,
		`CREATE PUBLICATION pglink_rights FOR TABLE public.ev WITH (publish_via_partition_root = true)`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, strings.Replace(src.URL("app"), "postgres@", "linker:linkerpw@", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for i := 0; i < 2; i++ {
		why, err := InstallTruncateCapture(ctx, conn, "rights", "pglink_rights", "k3y", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(why, "public.ev_2") || strings.Contains(why, "ev_1") {
			t.Fatalf("install %d: why = %q, want it to name public.ev_2 only", i, why)
		}
	}
	const triggers = `SELECT string_agg(tgrelid::regclass::text || ' ' || tgenabled::text, ', ') FROM pg_trigger WHERE tgname = 'pglink_truncate_rights'`
	if got := src.QueryString("app", triggers); got != "ev_1 A" {
		t.Fatalf("truncate triggers: %q, want ev_1 enabled always", got)
	}

	src.Exec("app", `SELECT pg_create_logical_replication_slot('peek', 'test_decoding')`)
	writer := strings.Replace(src.URL("app"), "postgres@", "writer:writerpw@", 1)
	if err := pgtest.ExecOn(writer, `BEGIN; INSERT INTO public.ev VALUES (1, 1); TRUNCATE public.ev_1; INSERT INTO public.ev VALUES (2, 1); TRUNCATE public.ev_2; COMMIT`); err != nil {
		t.Fatalf("a TRUNCATE by a role that may not read the key: %v", err)
	}
	got := src.QueryString("app", `SELECT string_agg(regexp_replace(data, '"at": "[^"]*"', 'at'), E'\n') FROM pg_logical_slot_get_changes('peek', NULL, NULL)`)
	rest, ok := got, true
	for _, want := range []string{"INSERT: id[integer]:1", "prefix: pglink_truncate", `"name": "ev_1"`, "INSERT: id[integer]:2"} {
		_, rest, ok = strings.Cut(rest, want)
		if !ok {
			break
		}
	}
	if !ok || strings.Count(got, "prefix: pglink_truncate") != 1 {
		t.Fatalf("decoded:\n%s\nwant the INSERT, the message naming ev_1, the INSERT, and no message for ev_2", got)
	}

	if err := RemoveCapture(ctx, conn, "rights"); err != nil {
		t.Fatal(err)
	}
	if got := src.QueryString("app", `SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pglink%'`); got != "0" {
		t.Fatalf("%s truncate triggers left after the capture's removal", got)
	}
	if got := src.QueryString("app", `SELECT count(*) FROM pg_namespace WHERE nspname = 'pglink'`); got != "0" {
		t.Fatal("schema pglink left on the source")
	}
}

// TestTruncateCaptureGivesWay installs the truncate capture while an
// application's transaction writes to both partitions in the other order
// than pglink locks them: it holds ev_2 when pglink locks ev_1 and waits
// for ev_2, then writes to ev_1. Before, the server ended one of the two
// for a deadlock after deadlock_timeout. pglink now gives way within a
// tenth of it: the application's transaction goes on and commits, and the
// capture is installed once it has.
func TestTruncateCaptureGivesWay(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.ev (id int, k int) PARTITION BY LIST (k)`,
		`CREATE TABLE public.ev_1 PARTITION OF public.ev FOR VALUES IN (1)`,
		`CREATE TABLE public.ev_2 PARTITION OF public.ev FOR VALUES IN (2)`,
		`CREATE PUBLICATION pglink_busy FOR TABLE public.ev WITH (publish_via_partition_root = true)`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	app := src.Connect("app")
	link := src.Connect("app")

	tx, err := app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO public.ev_2 VALUES (1, 2)`); err != nil {
		t.Fatal(err)
	}
	waited := make(chan string, 1)
	installed := make(chan error, 1)
	go func() {
		_, err := InstallTruncateCapture(ctx, link, "busy", "pglink_busy", "k3y", func(msg string) { waited <- msg })
		installed <- err
	}()
	// Wait until pglink holds ev_1 and waits for ev_2.
	waitForLockWait(t, src, "app", "public.ev_2", "pglink")
	start := time.Now()
	if _, err := tx.Exec(ctx, `INSERT INTO public.ev_1 VALUES (2, 1)`); err != nil {
		t.Fatalf("the application's write to ev_1 failed: %v", err)
	}
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Errorf("the application waited %s for pglink's lock; want less than deadlock_timeout (1s)", took)
	}
	select {
	case msg := <-waited:
		if !strings.Contains(msg, "gives way") {
			t.Errorf("log line %q does not say pglink waits", msg)
		}
	case <-time.After(10 * time.Second):
		t.Error("pglink did not say that it waits for the application's locks")
	}
	time.Sleep(200 * time.Millisecond) // pglink tries again meanwhile
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the application's transaction: %v", err)
	}
	if err := <-installed; err != nil {
		t.Fatalf("install after the application committed: %v", err)
	}
	const triggers = `SELECT string_agg(tgrelid::regclass::text, ', ' ORDER BY 1) FROM pg_trigger WHERE tgname = 'pglink_truncate_busy'`
	if got := src.QueryString("app", triggers); got != "ev_1, ev_2" {
		t.Fatalf("truncate triggers on %q, want ev_1, ev_2", got)
	}
	if got := src.QueryString("app", `SELECT count(*) FROM public.ev`); got != "2" {
		t.Fatalf("the application's rows: %s, want 2", got)
	}
}
