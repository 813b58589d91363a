package validate

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/pgtest"
)

const schema = `
CREATE SCHEMA "Shop";
CREATE TYPE "Shop".mood AS ENUM ('sad', 'happy');
CREATE TABLE "Shop"."Items" (id int, sub text, v numeric, m "Shop".mood, j jsonb, ts timestamptz, PRIMARY KEY (id, sub));
INSERT INTO "Shop"."Items" SELECT g, 'x' || (g % 3), g * 1.5, 'happy', jsonb_build_object('g', g), '2024-01-01 00:00+00'::timestamptz + g * interval '1 min'
	FROM generate_series(1, 3000) g;
CREATE TABLE public.nokey (a int, b text);
INSERT INTO public.nokey VALUES (1, 'dup'), (1, 'dup'), (2, 'other'), (NULL, NULL);
CREATE TABLE public.big (id bigint PRIMARY KEY, pad text);
INSERT INTO public.big SELECT g, md5(g::text) FROM generate_series(1, 200000) g;
CREATE SEQUENCE public.counter;
SELECT nextval('public.counter');
CREATE TABLE public."Mixed" ("Key" text, "Part" int, "Val" text, total int GENERATED ALWAYS AS ("Part" * 2) STORED,
	serial_id serial, PRIMARY KEY ("Key", "Part"));
INSERT INTO public."Mixed" ("Key", "Part", "Val") SELECT 'k' || (g % 7), g, 'v' || g FROM generate_series(1, 500) g;
CREATE TABLE public.byindex (a int NOT NULL, b int);
CREATE UNIQUE INDEX byindex_a ON public.byindex (a);
ALTER TABLE public.byindex REPLICA IDENTITY USING INDEX byindex_a;
INSERT INTO public.byindex SELECT g, g FROM generate_series(1, 50) g;
CREATE TABLE public.parted (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (1000);
CREATE TABLE public.parted_2 PARTITION OF public.parted FOR VALUES FROM (1000) TO (3000);
INSERT INTO public.parted SELECT g, 'p' || g FROM generate_series(1, 2999) g;
CREATE TABLE "Shop".events (m "Shop".mood, at timestamptz, n float8, PRIMARY KEY (m, at));
INSERT INTO "Shop".events SELECT (ARRAY['sad', 'happy'])[1 + g % 2]::"Shop".mood, '2024-03-10 00:00+00'::timestamptz + g * interval '1.5 s', g / 3.0
	FROM generate_series(1, 2500) g;
CREATE TABLE public.emptied (id int PRIMARY KEY);
INSERT INTO public.emptied SELECT generate_series(1, 2500);
`

func setup(t *testing.T) (src, dst *pgtest.Cluster, o Options) {
	src = pgtest.Start(t, pgtest.Options{})
	dst = pgtest.Start(t, pgtest.Options{Settings: map[string]string{"timezone": "'America/New_York'"}})
	for _, c := range []*pgtest.Cluster{src, dst} {
		c.CreateDB("app")
		c.Exec("app", schema)
	}
	ctx := context.Background()
	tables, err := catalog.Tables(ctx, src.Connect("app"), catalog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return src, dst, Options{Source: config(t, src.URL("app")), Target: config(t, dst.URL("app")), Tables: tables, ChunkRows: 1000}
}

func config(t *testing.T, url string) *pgx.ConnConfig {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func compare(t *testing.T, o Options) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Compare(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func table(rep Report, name string) TableResult {
	for _, r := range rep.Tables {
		if r.Table == name {
			return r
		}
	}
	return TableResult{}
}

func TestCompare(t *testing.T) {
	src, dst, o := setup(t)
	rep := compare(t, o)
	if !rep.Equal() {
		var b strings.Builder
		rep.WriteTable(&b)
		t.Fatalf("identical databases reported different:\n%s", b.String())
	}
	if got := table(rep, "public.big"); got.SourceRows != 200000 || got.Method != MethodChunks || got.Chunks < 150 {
		t.Errorf("big: %+v, want 200000 rows in about 200 chunks by key", got)
	}
	for _, name := range []string{"public.parted", "public.byindex", `public."Mixed"`, `"Shop".events`} {
		if got := table(rep, name); got.Method != MethodChunks || got.SourceRows == 0 || got.SourceRows != got.TargetRows {
			t.Errorf("%s: %+v", name, got)
		}
	}
	if len(rep.Sequences) == 0 {
		t.Errorf("no sequences compared")
	}

	dst.Exec("app", `ALTER DATABASE app SET default_transaction_read_only = off`,
		`UPDATE "Shop"."Items" SET v = v + 1 WHERE id = 7`,
		`DELETE FROM "Shop"."Items" WHERE id = 8`,
		`INSERT INTO "Shop"."Items" (id, sub) VALUES (99999, 'new')`,
		`DELETE FROM public.nokey WHERE ctid = (SELECT ctid FROM public.nokey WHERE b = 'dup' LIMIT 1)`,
		`UPDATE public.big SET pad = 'changed' WHERE id IN (123456, 7)`,
		`UPDATE public."Mixed" SET "Val" = 'changed' WHERE "Key" = 'k3' AND "Part" = 10`,
		`UPDATE public.byindex SET b = -1 WHERE a = 5`,
		`DELETE FROM public.parted WHERE id = 1500`,
		`TRUNCATE public.emptied`,
		`UPDATE "Shop".events SET n = 0 WHERE at = '2024-03-10 00:30:00+00'`,
		`SELECT setval('public.counter', 500)`)
	o.Jobs = 4
	rep = compare(t, o)
	if rep.Equal() {
		t.Fatal("differences reported as equal")
	}
	items := table(rep, `"Shop"."Items"`)
	if items.DifferentCount != 1 || items.MissingCount != 1 || items.ExtraCount != 1 {
		t.Errorf("Shop.Items: %+v", items)
	}
	want := map[string][]string{"different": {"(7,x1)"}, "missing": {"(8,x2)"}, "extra": {"(99999,new)"}}
	got := map[string][]string{"different": items.Different, "missing": items.Missing, "extra": items.Extra}
	for k, w := range want {
		if strings.Join(got[k], ";") != strings.Join(w, ";") {
			t.Errorf("Shop.Items %s = %v, want %v", k, got[k], w)
		}
	}
	nokey := table(rep, "public.nokey")
	if nokey.Method != "multiset" || nokey.MissingCount != 1 || nokey.ExtraCount != 0 {
		t.Errorf("public.nokey: %+v", nokey)
	}
	big := table(rep, "public.big")
	// Its two changes lie in different groups of chunks, compared by
	// different jobs; they are listed in key order all the same.
	if big.DifferentCount != 2 || strings.Join(big.Different, ";") != "(7);(123456)" {
		t.Errorf("public.big: %+v", big)
	}
	// Only the differing chunk's rows were read back, not the table.
	if big.ChunksDiffering != 2 || big.RowsFetched > 4*int64(o.ChunkRows) || big.RowsFetched == 0 {
		t.Errorf("public.big: %d chunks differ, %d rows read back to find two differences in 200000", big.ChunksDiffering, big.RowsFetched)
	}
	checkKeys(t, rep, `public."Mixed"`, nil, nil, []string{"(k3,10)"})
	checkKeys(t, rep, "public.byindex", nil, nil, []string{"(5)"})
	checkKeys(t, rep, "public.parted", []string{"(1500)"}, nil, nil)
	checkKeys(t, rep, `"Shop".events`, nil, nil, []string{`(sad,"2024-03-10 00:30:00+00")`})
	emptied := table(rep, "public.emptied")
	if emptied.MissingCount != 2500 || len(emptied.Missing) != 20 || emptied.RowsFetched != 20 {
		t.Errorf("public.emptied: %+v; want 2500 missing, 20 listed and read back", emptied)
	}
	var out strings.Builder
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"\n\"Shop\".\"Items\"  ", "\npublic.\"Mixed\"  ", "\n\"Shop\".events  ", "\npublic.big  ",
		"\n\"Shop\".\"Items\": different: (7,x1)\n"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("the report table lacks %q:\n%s", w, out.String())
		}
	}
	for _, s := range rep.Sequences {
		if s.Sequence == "public.counter" && (s.TargetValue == nil || *s.TargetValue != 500 || s.Note == "") {
			t.Errorf("sequence public.counter: %+v", s)
		}
	}

	o.Quick = true
	rep = compare(t, o)
	if q := table(rep, `"Shop"."Items"`); q.Method != "count" || q.SourceRows != 3000 || q.TargetRows != 3000 {
		t.Errorf("quick Shop.Items: %+v", q)
	}
	if q := table(rep, "public.nokey"); !q.Differs() {
		t.Errorf("quick mode missed a row count difference: %+v", q)
	}
	_ = src
}

func checkKeys(t *testing.T, rep Report, name string, missing, extra, different []string) {
	t.Helper()
	r := table(rep, name)
	got := map[string][]string{"missing": r.Missing, "extra": r.Extra, "different": r.Different}
	want := map[string][]string{"missing": missing, "extra": extra, "different": different}
	for k, w := range want {
		if strings.Join(got[k], ";") != strings.Join(w, ";") {
			t.Errorf("%s %s = %v, want %v", name, k, got[k], w)
		}
	}
}

func TestCompareSchemaDifferences(t *testing.T) {
	_, dst, o := setup(t)
	dst.Exec("app", `ALTER TABLE public.nokey ADD COLUMN c int`, `ALTER TABLE public.nokey ALTER COLUMN a TYPE bigint`, `DROP TABLE public.big`,
		`ALTER TABLE "Shop"."Items" ADD COLUMN "New Col" int`, `DROP TABLE public."Mixed"`)
	rep := compare(t, o)
	if rep.Equal() {
		t.Fatal("schema differences reported as equal")
	}
	joined := strings.Join(append(append(rep.OnlySource, rep.OnlyTarget...), rep.Different...), ";")
	for _, w := range []string{"public.big", "public.nokey.c", "public.nokey.a: integer on the source, bigint on the target",
		`"Shop"."Items"."New Col"`, `public."Mixed"`} {
		if !strings.Contains(joined, w) {
			t.Errorf("schema report %q lacks %q", joined, w)
		}
	}
}

// TestSequencesProgressJSON checks that a sequence behind on the target is
// reported but leaves the report equal, that progress reaches every table,
// and the JSON field names.
func TestSequencesProgressJSON(t *testing.T) {
	_, dst, o := setup(t)
	dst.Exec("app", `SELECT setval('public.counter', 77)`)
	var mu sync.Mutex
	done := map[string]bool{}
	o.Progress = func(p TableProgress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Done {
			done[p.Table] = true
		}
	}
	o.Jobs = 3
	rep := compare(t, o)
	if !rep.Equal() {
		var b strings.Builder
		rep.WriteTable(&b)
		t.Fatalf("a sequence behind on the target made the report unequal:\n%s", b.String())
	}
	var found bool
	for _, s := range rep.Sequences {
		if s.Sequence == "public.counter" {
			found = s.SourceValue != nil && *s.SourceValue == 1 && s.TargetValue != nil && *s.TargetValue == 77 && s.Note != ""
		}
	}
	if !found {
		t.Errorf("sequence public.counter not reported as behind: %+v", rep.Sequences)
	}
	if len(done) != len(rep.Tables) || len(rep.Tables) != len(o.Tables) {
		t.Errorf("progress reported %d tables done, report has %d, %d asked", len(done), len(rep.Tables), len(o.Tables))
	}
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil || !strings.Contains(b.String(), "sequences not in step") ||
		!strings.Contains(b.String(), "source and target hold the same data") {
		t.Errorf("table output (%v):\n%s", err, b.String())
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"tables":`, `"only_source":`, `"sequences":`, `"rows_fetched":`, `"chunks_differing":`, `"method":"chunks by key"`, `"note":`} {
		if !strings.Contains(string(js), w) {
			t.Errorf("JSON lacks %s", w)
		}
	}
}
