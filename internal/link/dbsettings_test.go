package link

import (
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestDatabaseSettingsCarried seeds a target from a source database with
// settings of its own and for roles in it: they reach the target, except
// default_transaction_read_only (pglink's), the settings of a role the
// target lacks, one the target already has otherwise, and an extension's
// setting the target refuses (its library is loaded there and knows no
// such name), which is reported without failing the seeding.
func TestDatabaseSettingsCarried(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"shared_preload_libraries": "'auto_explain'"}})
	src.CreateDB("app")
	src.Exec("app", `CREATE ROLE web`, `CREATE ROLE reader`, `CREATE ROLE ghost`,
		`CREATE TABLE public.t (id int PRIMARY KEY)`, `INSERT INTO public.t VALUES (1), (2)`,
		`ALTER DATABASE app SET work_mem = '8MB'`,
		`ALTER DATABASE app SET search_path = "$user", public, "odd Schema"`,
		`ALTER DATABASE app SET myapp.tenant = 'it''s me'`,
		`ALTER DATABASE app SET auto_explain.log_wrong_name = 'on'`,
		`ALTER DATABASE app SET maintenance_work_mem = '256MB'`,
		`ALTER ROLE web IN DATABASE app SET statement_timeout = '5s'`,
		`ALTER ROLE reader IN DATABASE app SET default_transaction_read_only = on`,
		`ALTER ROLE ghost IN DATABASE app SET work_mem = '1MB'`)
	dst.Exec("postgres", `CREATE ROLE web`, `CREATE ROLE reader`, `CREATE DATABASE app`,
		`ALTER DATABASE app SET maintenance_work_mem = '128MB'`)

	cfg := Config{Name: "settings", Source: src.URL("app"), Target: dst.URL("app")}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", 2*time.Minute)
	assertSame(t, src, dst, "app", "app")

	const settings = `SELECT string_agg(coalesce(r.rolname, '*') || ': ' || array_to_string(s.setconfig, ' | '), E'\n' ORDER BY s.setrole <> 0)
		FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase AND d.datname = 'app'
		LEFT JOIN pg_roles r ON r.oid = s.setrole`
	got := dst.QueryString("app", settings)
	want := `*: maintenance_work_mem=128MB | default_transaction_read_only=on | work_mem=8MB | search_path="$user", public, "odd Schema" | myapp.tenant=it's me
web: statement_timeout=5s`
	if got != want {
		t.Errorf("target's database settings:\n%s\nwant:\n%s", got, want)
	}
	// A new session of the application gets them.
	if got := dst.QueryString("app", "current_setting('search_path') || ' / ' || current_setting('myapp.tenant')"); got != `"$user", public, "odd Schema" / it's me` {
		t.Errorf("a new session on the target has search_path / myapp.tenant %s", got)
	}
	hist := dst.QueryString("app", `SELECT string_agg(event || ': ' || detail, E'\n' ORDER BY at)
		FROM pglink.history WHERE link = 'settings' AND event IN ('database_settings', 'missing_roles')`)
	for _, part := range []string{
		"set: work_mem = 8MB;", "myapp.tenant = it's me", "statement_timeout = 5s for role web",
		"kept the target's own: maintenance_work_mem = 256MB: the target has maintenance_work_mem = 128MB already",
		"default_transaction_read_only = on for role reader: pglink manages it on the target",
		"work_mem = 1MB for role ghost: role ghost does not exist on the target",
		"refused by the target: auto_explain.log_wrong_name = on: invalid configuration parameter name",
		"missing_roles: roles missing on the target; their settings in this database were not carried: ghost",
	} {
		if !strings.Contains(hist, part) {
			t.Errorf("history lacks %q:\n%s", part, hist)
		}
	}
}
