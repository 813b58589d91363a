package link

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestManagedTargetRole17 and TestManagedTargetRole15 link into a target
// whose role is no superuser but holds what a managed service grants its
// admin role, from a source whose role has only REPLICATION and the
// tables' ownership. Without one right at a time, assess names that right
// with its GRANT and start refuses before it makes anything; with all of
// them the link seeds and streams.
func TestManagedTargetRole17(t *testing.T) { testManagedTargetRole(t, 17) }
func TestManagedTargetRole15(t *testing.T) { testManagedTargetRole(t, 15) }

// managedGrants are what a managed service gives its admin role on the
// target, on top of owning the database it links into.
func managedGrants(version int) []string {
	var out []string
	for _, f := range []string{"pg_replication_origin_advance(text, pg_lsn)", "pg_replication_origin_create(text)",
		"pg_replication_origin_drop(text)", "pg_replication_origin_progress(text, boolean)",
		"pg_replication_origin_session_is_setup()", "pg_replication_origin_session_reset()",
		"pg_replication_origin_session_setup(text)", "pg_replication_origin_xact_setup(pg_lsn, timestamp with time zone)"} {
		out = append(out, "GRANT EXECUTE ON FUNCTION "+f+" TO admin")
	}
	out = append(out, "GRANT SET ON PARAMETER session_replication_role TO admin")
	if version >= 16 {
		out = append(out, "GRANT pg_create_subscription TO admin")
	}
	return out
}

func testManagedTargetRole(t *testing.T, version int) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{Version: version})
	src.Exec("postgres", `CREATE ROLE mover LOGIN REPLICATION PASSWORD 'mover-pw'`, `CREATE DATABASE shop OWNER mover`)
	fixture, err := os.ReadFile("testdata/fixture.sql")
	if err != nil {
		t.Fatal(err)
	}
	src.Exec("shop", "SET ROLE mover;\n"+string(fixture))
	// mover exists on the target too, but admin may not act as it: the
	// copied tables stay admin's.
	dst.Exec("postgres", `CREATE ROLE admin LOGIN PASSWORD 'admin-pw'`, `CREATE ROLE mover`, `CREATE DATABASE shop_copy OWNER admin`)
	dst.Exec("shop_copy", managedGrants(version)...)
	source := fmt.Sprintf("postgres://mover:mover-pw@127.0.0.1:%d/shop?sslmode=disable", src.Port)
	target := fmt.Sprintf("postgres://admin:admin-pw@127.0.0.1:%d/shop_copy?sslmode=disable", dst.Port)

	rights := []string{"target_rights", "origin_rights", "database_owner", "database_create"}
	cases := []struct {
		check         string
		revoke, grant []string
		want          []string
	}{
		{"target_rights", []string{"REVOKE SET ON PARAMETER session_replication_role FROM admin"},
			[]string{"GRANT SET ON PARAMETER session_replication_role TO admin"},
			[]string{"session_replication_role", `GRANT SET ON PARAMETER session_replication_role TO "admin";`}},
		{"origin_rights", []string{"REVOKE EXECUTE ON FUNCTION pg_replication_origin_session_setup(text) FROM admin"},
			[]string{"GRANT EXECUTE ON FUNCTION pg_replication_origin_session_setup(text) TO admin"},
			[]string{`GRANT EXECUTE ON FUNCTION pg_replication_origin_session_setup(text) TO "admin";`}},
		{"database_owner", []string{"ALTER DATABASE shop_copy OWNER TO postgres", "GRANT CREATE ON DATABASE shop_copy TO admin"},
			[]string{"REVOKE CREATE ON DATABASE shop_copy FROM admin", "ALTER DATABASE shop_copy OWNER TO admin"},
			[]string{"does not own database shop_copy", "default_transaction_read_only", `ALTER DATABASE "shop_copy" OWNER TO "admin";`}},
		{"database_create", []string{"REVOKE CREATE ON DATABASE shop_copy FROM admin"},
			[]string{"GRANT CREATE ON DATABASE shop_copy TO admin"},
			[]string{"may not create schemas in database shop_copy", `GRANT CREATE ON DATABASE "shop_copy" TO "admin";`}},
	}
	for _, tc := range cases {
		t.Run(tc.check, func(t *testing.T) {
			dst.Exec("shop_copy", tc.revoke...)
			defer dst.Exec("shop_copy", tc.grant...)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rep, err := assess.Run(ctx, assess.Options{Source: source, Target: target})
			if err != nil {
				t.Fatalf("assess: %v", err)
			}
			for _, check := range rights {
				got := findingsOf(rep.Findings, check)
				switch {
				case check != tc.check && len(got) > 0:
					t.Errorf("assess: finding %s (%s), want only %s", check, got[0].What, tc.check)
				case check == tc.check && (len(got) != 1 || got[0].Severity != assess.Blocker):
					t.Errorf("assess: %d findings %s, want one blocker: %+v", len(got), check, got)
				case check == tc.check && !contains(got[0].What+" "+strings.Join(got[0].SQL, " "), tc.want...):
					t.Errorf("assess: finding %s %q %q does not name %q", check, got[0].What, got[0].SQL, tc.want)
				case check == tc.check && len(got[0].SQL) != 1:
					t.Errorf("assess: finding %s gives %q, want only the missing right's statement", check, got[0].SQL)
				}
			}
			err = Run(ctx, Config{Name: "managed", Source: source, Target: target})
			var pe *ProblemsError
			if !errors.As(err, &pe) || !contains(err.Error(), append([]string{"target:"}, tc.want...)...) {
				t.Fatalf("start: %v, want a refusal naming %q", err, tc.want)
			}
			if got := src.QueryString("shop", "SELECT count(*) FROM pg_replication_slots"); got != "0" {
				t.Errorf("the refused start left %s slots on the source", got)
			}
			if got := src.QueryString("shop", "SELECT count(*) FROM pg_publication"); got != "0" {
				t.Errorf("the refused start left %s publications on the source", got)
			}
			if got := dst.QueryString("shop_copy", "SELECT count(*) FROM pg_namespace WHERE nspname IN ('pglink', 'shop')"); got != "0" {
				t.Errorf("the refused start left %s schemas on the target", got)
			}
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := assess.Run(ctx, assess.Options{Source: source, Target: target})
	if err != nil {
		t.Fatalf("assess: %v", err)
	}
	for _, f := range assess.Blockers(rep.Findings) {
		t.Errorf("assess with every right granted: blocker %s: %s", f.Check, f.What)
	}
	l := startTestLink(t, Config{Name: "managed", Source: source, Target: target})
	waitPhase(t, l, "replicating", 3*time.Minute)
	assertSame(t, src, dst, "shop", "shop_copy")
	execFile(t, src, "shop", "testdata/changes.sql")
	waitCaughtUp(t, l, src, "shop", 2*time.Minute)
	assertSame(t, src, dst, "shop", "shop_copy")
	if got := dst.QueryString("shop_copy", `SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'shop'`); got != "admin" {
		t.Errorf("the copied tables are owned by %s, want admin", got)
	}
	if got := dst.QueryString("shop_copy", `SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
		WHERE d.datname = 'shop_copy' AND 'default_transaction_read_only=on' = ANY (s.setconfig)`); got != "1" {
		t.Errorf("the target database is not read-only while linked")
	}
}

func findingsOf(fs []assess.Finding, check string) []assess.Finding {
	var out []assess.Finding
	for _, f := range fs {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}
