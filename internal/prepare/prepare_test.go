package prepare

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/pgtest"
)

func sqlOf(p Plan) string {
	var b strings.Builder
	for _, s := range p.Steps {
		b.WriteString(s.SQL + "\n")
	}
	return b.String()
}

// TestPrepare builds and applies the fixes on a source with wal_level =
// replica and a table without key, with a role for the link; after a
// restart, the role can log in with its password and nothing it needs is
// missing but the right to publish the tables a superuser owns.
func TestPrepare(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_level": "replica"}})
	src.CreateDB("app")
	src.Exec("app", `CREATE ROLE appowner`, `CREATE SCHEMA "Sales"`,
		`CREATE TABLE public.ok (id int PRIMARY KEY)`, `ALTER TABLE public.ok OWNER TO appowner`,
		`CREATE TABLE public.nokey (v int)`, `ALTER TABLE public.nokey OWNER TO appowner`,
		`CREATE TABLE "Sales"."Orders" (id serial PRIMARY KEY)`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const password = "s3cret-Pw'x"
	opts := Options{Source: src.URL("app"), Role: "link_role", RolePassword: password, ReplicaIdentityFull: true}
	conn, _, err := Connect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	plan, err := Build(ctx, conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := sqlOf(plan)
	for _, want := range []string{
		`CREATE ROLE "link_role" LOGIN REPLICATION PASSWORD '****';`,
		`GRANT CONNECT ON DATABASE "app" TO "link_role";`, `GRANT CREATE ON DATABASE "app" TO "link_role";`,
		`GRANT USAGE ON SCHEMA "Sales" TO "link_role";`, `GRANT SELECT ON ALL TABLES IN SCHEMA "public" TO "link_role";`,
		`GRANT SELECT ON ALL SEQUENCES IN SCHEMA "Sales" TO "link_role";`, `GRANT "appowner" TO "link_role";`,
		`ALTER TABLE "public"."nokey" REPLICA IDENTITY FULL;`, `ALTER SYSTEM SET wal_level = logical;`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("plan lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, `GRANT "postgres"`) {
		t.Errorf("plan makes the role a member of a superuser role:\n%s", got)
	}
	last := plan.Steps[len(plan.Steps)-1]
	if !strings.Contains(last.Note, "restart") {
		t.Errorf("wal_level step: %+v", last)
	}
	notes := strings.Join(plan.Notes, "\n")
	if !strings.Contains(notes, "superuser postgres") || !strings.Contains(notes, "host replication link_role") {
		t.Errorf("notes: %s", notes)
	}
	if strings.Contains(got+notes, password) || strings.Contains(got, "SCRAM") {
		t.Errorf("the password or its secret shows in the plan")
	}
	var shown []string
	if err := plan.Apply(ctx, conn, func(s Step) { shown = append(shown, s.SQL) }); err != nil {
		t.Fatal(err)
	}
	if len(shown) != len(plan.Steps) {
		t.Errorf("%d steps shown, %d in the plan", len(shown), len(plan.Steps))
	}
	if got := src.QueryString("app", `SELECT relreplident FROM pg_class WHERE oid = 'public.nokey'::regclass`); got != "f" {
		t.Errorf("replica identity of nokey: %s", got)
	}
	if got := src.QueryString("app", `SELECT setting FROM pg_file_settings
		WHERE name = 'wal_level' AND sourcefile LIKE '%postgresql.auto.conf'`); got != "logical" {
		t.Errorf("wal_level in postgresql.auto.conf: %s", got)
	}

	// Again: the role exists now, the table has its identity; every step
	// can run twice.
	plan, err = Build(ctx, conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	got = sqlOf(plan)
	if !strings.Contains(got, `ALTER ROLE "link_role" WITH LOGIN REPLICATION PASSWORD '****';`) || strings.Contains(got, "REPLICA IDENTITY") {
		t.Errorf("second plan:\n%s", got)
	}
	if err := plan.Apply(ctx, conn, nil); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	stopCtx, stopCancel := context.WithTimeout(context.Background(), time.Minute)
	defer stopCancel()
	if err := src.Stop(stopCtx, "fast"); err != nil {
		t.Fatal(err)
	}
	if err := src.Start(stopCtx); err != nil {
		t.Fatal(err)
	}
	// The role logs in with its password (the SCRAM secret pglink made
	// matches it), and the link would find no right missing but for the
	// table a superuser owns.
	roleURL := strings.Replace(src.URL("app"), "postgres@", "link_role:"+strings.ReplaceAll(password, "'", "%27")+"@", 1)
	rc, err := pgx.Connect(ctx, roleURL)
	if err != nil {
		t.Fatalf("the new role cannot log in: %v", err)
	}
	defer rc.Close(ctx)
	tables, err := catalog.Tables(ctx, rc, catalog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := assess.CheckSource(ctx, rc, tables)
	if err != nil {
		t.Fatal(err)
	}
	var blockers []string
	for _, f := range assess.Blockers(fs) {
		blockers = append(blockers, f.Check+": "+f.What)
	}
	if len(blockers) != 1 || !strings.HasPrefix(blockers[0], "owner_right") || !strings.Contains(blockers[0], "Sales.Orders") ||
		strings.Contains(blockers[0], "public.") {
		t.Errorf("blockers for the new role after prepare and a restart: %q", blockers)
	}
}

func TestScramVerifier(t *testing.T) {
	v, err := scramVerifier("pw")
	if err != nil || !strings.HasPrefix(v, "SCRAM-SHA-256$4096:") || strings.Count(v, "$") != 2 {
		t.Errorf("verifier %q, %v", v, err)
	}
	for _, bad := range []string{"", "pässword", "tab\there"} {
		if _, err := scramVerifier(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
