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
		why, err := InstallTruncateCapture(ctx, conn, "rights", "pglink_rights", "k3y")
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
