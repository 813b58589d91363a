package validate

import (
	"context"
	"strings"
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
	if got := table(rep, "public.big").SourceRows; got != 200000 {
		t.Errorf("big: %d source rows compared, want 200000", got)
	}

	dst.Exec("app", `ALTER DATABASE app SET default_transaction_read_only = off`,
		`UPDATE "Shop"."Items" SET v = v + 1 WHERE id = 7`,
		`DELETE FROM "Shop"."Items" WHERE id = 8`,
		`INSERT INTO "Shop"."Items" (id, sub) VALUES (99999, 'new')`,
		`DELETE FROM public.nokey WHERE ctid = (SELECT ctid FROM public.nokey WHERE b = 'dup' LIMIT 1)`,
		`UPDATE public.big SET pad = 'changed' WHERE id = 123456`)
	rep = compare(t, o)
	if rep.Equal() {
		t.Fatal("differences reported as equal")
	}
	items := table(rep, "Shop.Items")
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
	if big.DifferentCount != 1 || len(big.Different) != 1 || big.Different[0] != "(123456)" {
		t.Errorf("public.big: %+v", big)
	}
	// Only the differing bucket's rows were read back, not the table.
	if big.RowsFetched > 2*int64(o.ChunkRows)*2 || big.RowsFetched == 0 {
		t.Errorf("public.big: %d rows read back to find one difference in 200000", big.RowsFetched)
	}

	o.Quick = true
	rep = compare(t, o)
	if q := table(rep, "Shop.Items"); q.Method != "count" || q.SourceRows != 3000 || q.TargetRows != 3000 {
		t.Errorf("quick Shop.Items: %+v", q)
	}
	if q := table(rep, "public.nokey"); !q.Differs() {
		t.Errorf("quick mode missed a row count difference: %+v", q)
	}
	_ = src
}

func TestCompareSchemaDifferences(t *testing.T) {
	_, dst, o := setup(t)
	dst.Exec("app", `ALTER TABLE public.nokey ADD COLUMN c int`, `ALTER TABLE public.nokey ALTER COLUMN a TYPE bigint`, `DROP TABLE public.big`)
	rep := compare(t, o)
	if rep.Equal() {
		t.Fatal("schema differences reported as equal")
	}
	joined := strings.Join(append(append(rep.OnlySource, rep.OnlyTarget...), rep.Different...), ";")
	for _, w := range []string{"public.big", "public.nokey.c", "public.nokey.a: integer on the source, bigint on the target"} {
		if !strings.Contains(joined, w) {
			t.Errorf("schema report %q lacks %q", joined, w)
		}
	}
}
