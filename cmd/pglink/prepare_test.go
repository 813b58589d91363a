package main

import (
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestPrepareCommand: --dry-run prints the statements and changes nothing;
// without it they run; the role's password never shows.
func TestPrepareCommand(t *testing.T) {
	clearEnv(t)
	src := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.nokey (v int)`)
	t.Setenv(rolePasswordEnv, "role-secret")
	args := []string{"prepare", "--source", src.URL("postgres"), "--database", "app", "--role", "linker", "--replica-identity-full"}

	code, stdout, stderr := pglink(t, append(args, "--dry-run")...)
	if code != exitOK || !strings.Contains(stdout, "-- dry run") ||
		!strings.Contains(stdout, `CREATE ROLE "linker" LOGIN REPLICATION PASSWORD '****';`) ||
		!strings.Contains(stdout, `ALTER TABLE "public"."nokey" REPLICA IDENTITY FULL;`) {
		t.Fatalf("dry run: exit %d, stdout %s, stderr %s", code, stdout, stderr)
	}
	if got := src.QueryString("app", `SELECT count(*) FROM pg_roles WHERE rolname = 'linker'`); got != "0" {
		t.Errorf("the dry run created the role")
	}
	code, stdout, stderr = pglink(t, args...)
	if code != exitOK || !strings.Contains(stdout, "statements applied") {
		t.Fatalf("prepare: exit %d, stdout %s, stderr %s", code, stdout, stderr)
	}
	if got := src.QueryString("app", `SELECT relreplident FROM pg_class WHERE oid = 'public.nokey'::regclass`); got != "f" {
		t.Errorf("replica identity: %s", got)
	}
	if strings.Contains(stdout+stderr, "role-secret") {
		t.Errorf("the role's password shows")
	}
	// A user who may not create roles: the statement fails, exit 1.
	src.Exec("app", `CREATE ROLE weak LOGIN PASSWORD 'weakpw'`)
	weak := strings.Replace(src.URL("app"), "postgres@", "weak:weakpw@", 1)
	code, stdout, stderr = pglink(t, "prepare", "--source", weak, "--role", "other")
	if code != exitError || !strings.Contains(stderr, `CREATE ROLE "other" LOGIN REPLICATION PASSWORD '****'; failed: ERROR: must be superuser`) || !strings.Contains(stdout, `CREATE ROLE "other"`) {
		t.Errorf("prepare without rights: exit %d, stdout %s, stderr %s", code, stdout, stderr)
	}
	if code, _, stderr := pglink(t, "prepare", "--source", "postgres://postgres@127.0.0.1:1/app?connect_timeout=2"); code != exitUsage || !strings.Contains(stderr, "cannot reach") {
		t.Errorf("unreachable source: exit %d, %s", code, stderr)
	}
	if code, _, _ := pglink(t, "prepare"); code != exitUsage {
		t.Errorf("no source: exit %d", code)
	}
}
