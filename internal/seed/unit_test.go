package seed

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/report"
)

func TestSplitScript(t *testing.T) {
	script := `--
-- PostgreSQL database dump
--
\restrict abc123

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: bob
--

CREATE FUNCTION public.f() RETURNS text
    LANGUAGE plpgsql
    AS $_$ BEGIN RETURN 'a;b' || $x$;$x$; END $_$;


ALTER FUNCTION public.f() OWNER TO bob;

--
-- Name: T; Type: TABLE; Schema: Odd; Owner: "Weird ""Role"""
--

CREATE TABLE "Odd"."T" (
    "a;b" text DEFAULT E'it\'s;' /* c; /* nested; */ */,
    c text DEFAULT 'x'';y' -- trailing; comment
);
\unrestrict abc123
`
	got := splitScript(script)
	want := []statement{
		{SQL: "SET statement_timeout = 0"},
		{SQL: "SELECT pg_catalog.set_config('search_path', '', false)"},
		{SQL: "CREATE FUNCTION public.f() RETURNS text\n    LANGUAGE plpgsql\n    AS $_$ BEGIN RETURN 'a;b' || $x$;$x$; END $_$", Type: "FUNCTION", Name: "f()"},
		{SQL: "ALTER FUNCTION public.f() OWNER TO bob", Type: "FUNCTION", Name: "f()"},
		{SQL: "CREATE TABLE \"Odd\".\"T\" (\n    \"a;b\" text DEFAULT E'it\\'s;' /* c; /* nested; */ */,\n    c text DEFAULT 'x'';y' -- trailing; comment\n)", Type: "TABLE", Name: "T"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("splitScript:\ngot  %#v\nwant %#v", got, want)
	}
}

// pglink's own triggers on the source (the DDL capture's event triggers,
// the partitions' truncate triggers) never reach the target.
func TestWithoutOwnObjects(t *testing.T) {
	script := `--
-- Name: p2 pglink_truncate_shop; Type: TRIGGER; Schema: public; Owner: postgres
--

CREATE TRIGGER pglink_truncate_shop AFTER TRUNCATE ON public.p2 FOR EACH STATEMENT EXECUTE FUNCTION pglink.truncate_shop();

ALTER TABLE public.p2 ENABLE ALWAYS TRIGGER pglink_truncate_shop;

--
-- Name: p2 audit; Type: TRIGGER; Schema: public; Owner: postgres
--

CREATE TRIGGER audit AFTER TRUNCATE ON public.p2 FOR EACH STATEMENT EXECUTE FUNCTION public.audit();

--
-- Name: pglink_ddl_shop; Type: EVENT TRIGGER; Schema: -; Owner: postgres
--

CREATE EVENT TRIGGER pglink_ddl_shop ON ddl_command_end EXECUTE FUNCTION pglink.ddl_capture_shop();
`
	got := withoutOwnObjects(splitScript(script))
	want := []statement{{SQL: "CREATE TRIGGER audit AFTER TRUNCATE ON public.p2 FOR EACH STATEMENT EXECUTE FUNCTION public.audit()",
		Type: "TRIGGER", Name: "p2 audit"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("withoutOwnObjects:\ngot  %#v\nwant %#v", got, want)
	}
}

func TestDropMissingRoles(t *testing.T) {
	stmts := []statement{
		{SQL: "CREATE TABLE public.t (a int)", Type: "TABLE"},
		{SQL: "ALTER TABLE public.t OWNER TO alice", Type: "TABLE"},
		{SQL: `ALTER TABLE public."x TO bob" OWNER TO "Bob Smith"`, Type: "TABLE"},
		{SQL: "GRANT SELECT ON TABLE public.t TO carol", Type: "ACL"},
		{SQL: "GRANT ALL ON SCHEMA public TO PUBLIC", Type: "ACL"},
		{SQL: "REVOKE ALL ON TABLE public.t FROM dave", Type: "ACL"},
		{SQL: "GRANT SELECT ON TABLE public.t TO postgres WITH GRANT OPTION", Type: "ACL"},
		{SQL: "ALTER DEFAULT PRIVILEGES FOR ROLE erin IN SCHEMA public GRANT SELECT ON TABLES TO postgres", Type: "DEFAULT ACL"},
	}
	var rep Report
	kept := dropMissingRoles(stmts, map[string]bool{"postgres": true, "alice": true}, &rep)
	var keptSQL []string
	for _, s := range kept {
		keptSQL = append(keptSQL, s.SQL)
	}
	wantKept := []string{stmts[0].SQL, stmts[1].SQL, stmts[4].SQL, stmts[6].SQL}
	if !reflect.DeepEqual(keptSQL, wantKept) {
		t.Errorf("kept:\ngot  %q\nwant %q", keptSQL, wantKept)
	}
	if got, want := rep.MissingRoles, []string{"Bob Smith", "carol", "dave", "erin"}; !reflect.DeepEqual(got, want) {
		t.Errorf("missing roles: got %q, want %q", got, want)
	}
	if len(rep.Skipped) != 4 {
		t.Errorf("skipped: got %q", rep.Skipped)
	}
}

func TestSplitPassword(t *testing.T) {
	cases := []struct{ in, rest, password string }{
		{"postgres://u:p%40ss@h:5/db?sslmode=disable", "postgres://u@h:5/db?sslmode=disable", "p@ss"},
		{"postgresql://u@h/db?password=sec&sslmode=require", "postgresql://u@h/db?sslmode=require", "sec"},
		{`host=h port=5 password='a b\'c' user=u`, `host='h' port='5' user='u'`, `a b'c`},
		{"host=h dbname = db", `host='h' dbname='db'`, ""},
	}
	for _, tc := range cases {
		rest, pw, err := splitPassword(tc.in)
		if err != nil || rest != tc.rest || pw != tc.password {
			t.Errorf("splitPassword(%q): got %q, %q, %v; want %q, %q", tc.in, rest, pw, err, tc.rest, tc.password)
		}
	}
	if _, _, err := splitPassword("host='unterminated password=x"); err == nil || strings.Contains(err.Error(), "x") {
		t.Errorf("unterminated: got %v", err)
	}
}

func TestBounds(t *testing.T) {
	if got, want := intBounds(1, 100, 4), []int64{26, 51, 76}; !reflect.DeepEqual(got, want) {
		t.Errorf("intBounds(1,100,4): got %v, want %v", got, want)
	}
	if got := intBounds(5, 6, 10); len(got) != 1 || got[0] != 6 {
		t.Errorf("intBounds(5,6,10): got %v", got)
	}
	if got := intBounds(-1<<63, 1<<63-1, 2); len(got) != 1 || got[0] != 0 {
		t.Errorf("intBounds(extremes): got %v", got)
	}
	preds := boundsPredicates("x", []int64{10, 20}, func(v int64) string { return fmt.Sprint(v) })
	want := []string{"x < 10", "x >= 10 AND x < 20", "x >= 20"}
	if !reflect.DeepEqual(preds, want) {
		t.Errorf("boundsPredicates: got %q, want %q", preds, want)
	}
	if got := splitCount(1000, 300); got != 4 {
		t.Errorf("splitCount: got %d, want 4", got)
	}
}

func TestCopySQL(t *testing.T) {
	tb := catalog.Table{Schema: "S", Name: "T x", Columns: []catalog.Column{
		{Name: "id", BinaryPortable: true}, {Name: "g", Generated: true, BinaryPortable: true},
		{Name: `"q"`, BinaryPortable: true}}}
	p := &part{table: &tableState{table: tb}, rel: `"S"."T x"`}
	src, tgt := copySQL(p, false, false)
	if want := `COPY "S"."T x" ("id", """q""") TO STDOUT (FORMAT binary)`; src != want {
		t.Errorf("source: got %s, want %s", src, want)
	}
	if want := `COPY "S"."T x" ("id", """q""") FROM STDIN (FORMAT binary)`; tgt != want {
		t.Errorf("target: got %s, want %s", tgt, want)
	}
	src, tgt = copySQL(p, false, true)
	if !strings.HasSuffix(src, "(FORMAT binary)") || !strings.HasSuffix(tgt, "(FORMAT binary, FREEZE)") {
		t.Errorf("frozen copy: source %s, target %s", src, tgt)
	}
	p.rel, p.where = `"S"."leaf"`, `"id" < 5`
	src, _ = copySQL(p, true, false)
	if want := `COPY (SELECT "id", """q""" FROM ONLY "S"."leaf" WHERE "id" < 5) TO STDOUT (FORMAT text)`; src != want {
		t.Errorf("source range: got %s, want %s", src, want)
	}
	tb.Columns[0].BinaryPortable = false
	p.table.table = tb
	if _, tgt = copySQL(p, false, false); !strings.HasSuffix(tgt, "(FORMAT text)") {
		t.Errorf("a column without portable binary form must make the copy text: %s", tgt)
	}
}

// The meter reads the clock every meterRows rows or meterBytes bytes, and
// reports at most every progressEvery.
func TestMeterReportsOnRowsOrBytes(t *testing.T) {
	var reports []report.CopyProgress
	m := &meter{w: io.Discard, p: &part{table: &tableState{}}, report: func(p report.CopyProgress) { reports = append(reports, p) }, start: time.Now()}
	row := make([]byte, 10)
	for range meterRows - 1 {
		m.Write(row)
	}
	if len(reports) != 0 {
		t.Fatalf("reported after %d small rows: %+v", meterRows-1, reports)
	}
	m.Write(row)
	if len(reports) != 1 || reports[0].Rows != meterRows || reports[0].Bytes != 10*meterRows {
		t.Fatalf("after %d rows: %+v, want one report of %d rows", meterRows, reports, meterRows)
	}
	for range meterRows {
		m.Write(row)
	}
	if len(reports) != 1 {
		t.Fatalf("reported again within %s: %+v", progressEvery, reports)
	}
	m.last = time.Now().Add(-progressEvery)
	m.Write(make([]byte, meterBytes)) // one wide row: the bytes read the clock
	if len(reports) != 2 || reports[1].Rows != 2*meterRows+1 {
		t.Fatalf("after a wide row: %+v, want a second report", reports)
	}
}

func TestDropForeignOwners(t *testing.T) {
	stmts := []statement{
		{SQL: "CREATE TABLE public.t (a int)", Type: "TABLE"},
		{SQL: "ALTER TABLE public.t OWNER TO alice", Type: "TABLE"},
		{SQL: `ALTER TABLE public.u OWNER TO "Bob Smith"`, Type: "TABLE"},
		{SQL: "GRANT SELECT ON TABLE public.t TO bob", Type: "ACL"},
		{SQL: "ALTER DEFAULT PRIVILEGES FOR ROLE erin IN SCHEMA public GRANT SELECT ON TABLES TO alice", Type: "DEFAULT ACL"},
		{SQL: "ALTER TABLE public.v OWNER TO CURRENT_USER", Type: "TABLE"},
	}
	var rep Report
	kept := dropForeignOwners(stmts, map[string]bool{"alice": true}, &rep)
	var keptSQL []string
	for _, s := range kept {
		keptSQL = append(keptSQL, s.SQL)
	}
	wantKept := []string{stmts[0].SQL, stmts[1].SQL, stmts[3].SQL, stmts[5].SQL}
	if !reflect.DeepEqual(keptSQL, wantKept) {
		t.Errorf("kept:\ngot  %q\nwant %q", keptSQL, wantKept)
	}
	if len(rep.Skipped) != 2 || !strings.Contains(rep.Skipped[0], "Bob Smith") || !strings.Contains(rep.Skipped[1], "erin") {
		t.Errorf("skipped: %q", rep.Skipped)
	}
}
