package link

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
