package link

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/pgdump"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestStartRefusesOnAssessBlockers checks that pglink start runs the
// checks of pglink assess: a source without a free replication slot and
// with an unlogged table is refused with each blocker and its fix, and the
// refusal leaves nothing behind; warnings (a large object) do not block.
func TestStartRefusesOnAssessBlockers(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"max_replication_slots": "1"}})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.ok (id int PRIMARY KEY)`, `CREATE UNLOGGED TABLE public.scratch (id int PRIMARY KEY)`,
		`SELECT lo_from_bytea(0, 'x')`, `SELECT pg_create_physical_replication_slot('standby')`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := Run(ctx, Config{Name: "x", Source: src.URL("app"), Target: dst.URL("app")})
	var pe *ProblemsError
	if !errors.As(err, &pe) {
		t.Fatalf("Run: %v, want a ProblemsError", err)
	}
	for _, want := range []string{"source: no free replication slots", "ALTER SYSTEM SET max_replication_slots = 3;",
		"source: unlogged tables", `ALTER TABLE "public"."scratch" SET LOGGED;`, "pglink assess"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "large object") {
		t.Errorf("a warning blocks the start: %v", err)
	}
	if got := src.QueryString("app", "SELECT count(*) FROM pg_publication"); got != "0" {
		t.Errorf("%s publications left on the source", got)
	}
	if got := src.QueryString("app", "SELECT string_agg(slot_name, ',') FROM pg_replication_slots"); got != "standby" {
		t.Errorf("slots on the source: %s", got)
	}
	if got := dst.QueryString("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'app'"); got != "0" {
		t.Errorf("the target database created for the refused link is left behind")
	}
}

// TestStartRefusesSourceNewerThanPgDump links a PostgreSQL 16 source with
// --schema copy where the only pg_dump is Debian's 15, which cannot dump
// it: pglink start and assess both name the blocker and its fixes, and the
// refusal leaves no slot on the source and no pglink schema on the target.
// With --schema existing the same source is not refused for it.
func TestStartRefusesSourceNewerThanPgDump(t *testing.T) {
	if _, err := pgdump.Find(context.Background(), 160000); err == nil {
		t.Fatalf("this test needs a machine whose newest pg_dump is older than 16 (Debian's 15)")
	}
	src := pgtest.Start(t, pgtest.Options{Version: 16})
	dst := pgtest.Start(t, pgtest.Options{Version: 16})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.items (id int PRIMARY KEY, name text)`)
	dst.CreateDB("app")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wants := []string{"source: the source runs PostgreSQL 16", "pg_dump", "version 15", "postgresql-client-16", "--schema existing"}
	err := Run(ctx, Config{Name: "newer", Source: src.URL("app"), Target: dst.URL("app")})
	var pe *ProblemsError
	if !errors.As(err, &pe) || len(pe.Problems) != 1 || !contains(err.Error(), wants...) {
		t.Fatalf("Run: %v, want one problem naming %q", err, wants)
	}
	if got := src.QueryString("app", "SELECT count(*) FROM pg_replication_slots"); got != "0" {
		t.Errorf("%s replication slots left on the source", got)
	}
	if got := dst.QueryString("app", "SELECT count(*) FROM pg_tables WHERE schemaname IN ('pglink', 'public')"); got != "0" {
		t.Errorf("the refused link left %s tables on the target", got)
	}
	if got := dst.QueryString("app", "SELECT count(*) FROM pg_namespace WHERE nspname = 'pglink'"); got != "0" {
		t.Errorf("the refused link left the pglink schema on the target")
	}
	rep, err := assess.Run(ctx, assess.Options{Source: src.URL("app"), Target: dst.URL("app")})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, f := range rep.Findings {
		if f.Check == "pg_dump" {
			found = f.Severity == assess.Blocker && contains(f.What+" "+f.Remedy, wants[1:]...)
		}
	}
	if !found || rep.Blockers != 1 {
		t.Errorf("assess: %d blockers, pg_dump blocker found %v: %+v", rep.Blockers, found, rep.Findings)
	}
	rep, err = assess.Run(ctx, assess.Options{Source: src.URL("app"), Target: dst.URL("app"), Schema: assess.SchemaExisting})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range assess.Blockers(rep.Findings) {
		if f.Check == "pg_dump" {
			t.Errorf("assess with --schema existing: %+v", f)
		}
	}
}
