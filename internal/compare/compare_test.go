package compare

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// schemaSQL holds the cases the comparison must handle: a mixed-case quoted
// name, a partitioned table, a table without key that holds duplicates, a
// generated column and values whose text form depends on settings.
var schemaSQL = []string{
	`CREATE SCHEMA "Shop"`,
	`CREATE TABLE "Shop"."Items" (id int, part text, price numeric, at timestamptz, tags text[],
		total numeric GENERATED ALWAYS AS (price * 2) STORED, PRIMARY KEY (id, part))`,
	`CREATE TABLE public.events (at date NOT NULL, n int, PRIMARY KEY (at, n)) PARTITION BY RANGE (at)`,
	`CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`,
	`CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`,
	`CREATE TABLE public.nokey (a int, b text)`,
	`INSERT INTO "Shop"."Items" (id, part, price, at, tags)
		SELECT i, 'p' || (i % 3), i * 1.5, '2024-01-01 00:00+00'::timestamptz + i * interval '1 hour',
		       ARRAY['x', NULL, 'y "q"'] FROM generate_series(1, 500) i`,
	`INSERT INTO "Shop"."Items" (id, part, price) VALUES (0, 'nan', 'NaN')`,
	`INSERT INTO public.events SELECT '2024-06-01'::date + i, i FROM generate_series(1, 300) i`,
	`INSERT INTO public.nokey VALUES (1, 'a'), (1, 'a'), (2, NULL), (3, 'c')`,
}

func setup(t *testing.T) (*pgtest.Cluster, *pgtest.Cluster) {
	t.Helper()
	src, dst := pgtest.Start(t, pgtest.Options{}), pgtest.Start(t, pgtest.Options{})
	for _, c := range []*pgtest.Cluster{src, dst} {
		c.CreateDB("shop")
		c.Exec("shop", schemaSQL...)
	}
	// The target prints times in another zone: values must still compare equal.
	dst.Exec("shop", `ALTER DATABASE shop SET TimeZone = 'Asia/Tokyo'`)
	return src, dst
}

func compareShop(t *testing.T, src, dst *pgtest.Cluster) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Databases(ctx, src.Connect("shop"), dst.Connect("shop"))
	if err != nil {
		t.Fatalf("Databases: %v", err)
	}
	return res
}

func TestCompare(t *testing.T) {
	src, dst := setup(t)

	res := compareShop(t, src, dst)
	if !res.Equal() {
		t.Fatalf("identical databases differ:\n%s", res)
	}
	if got, want := res.Tables, 3; got != want {
		t.Fatalf("tables = %d, want %d (partitions must be compared through their root)", got, want)
	}
	if got, want := res.Rows, int64(501+300+4); got != want {
		t.Fatalf("rows = %d, want %d", got, want)
	}

	dst.Exec("shop",
		`UPDATE "Shop"."Items" SET price = price + 1 WHERE id = 7`, // also changes the generated column
		`DELETE FROM public.events WHERE n = 10`,
		`INSERT INTO public.events VALUES ('2025-03-01', 1000)`,
		`DELETE FROM public.nokey WHERE ctid = (SELECT min(ctid) FROM public.nokey WHERE a = 1)`,
		`INSERT INTO public.nokey VALUES (3, 'c')`,
	)
	res = compareShop(t, src, dst)
	if res.Equal() {
		t.Fatal("changed databases compare equal")
	}
	got := map[string]Diff{}
	for _, d := range res.Diffs {
		got[d.Table] = d
	}
	check := func(table string, missing, extra, different int, example string) {
		t.Helper()
		d := got[table]
		if d.Missing != missing || d.Extra != extra || d.Different != different {
			t.Errorf("%s: missing/extra/different = %d/%d/%d, want %d/%d/%d (%v)",
				table, d.Missing, d.Extra, d.Different, missing, extra, different, d.Examples)
		}
		if !slices.ContainsFunc(d.Examples, func(e string) bool { return strings.Contains(e, example) }) {
			t.Errorf("%s: no example mentions %q: %v", table, example, d.Examples)
		}
	}
	check("Shop.Items", 0, 0, 1, "(7,p1,")
	check("public.events", 1, 1, 0, "(2025-03-01,1000)")
	check("public.nokey", 1, 1, 0, "(3,c)")
}

func TestTablesOnlyOneSide(t *testing.T) {
	src, dst := setup(t)
	src.Exec("shop", `CREATE TABLE public.only_src (id int PRIMARY KEY)`)
	dst.Exec("shop", `CREATE TABLE public.only_dst (id int PRIMARY KEY)`,
		`ALTER TABLE public.nokey ADD COLUMN c int`)
	ctx := context.Background()
	res, err := Tables(ctx, src.Connect("shop"), dst.Connect("shop"),
		[]string{"public.only_src", "public.only_dst", "public.nokey", "public.events_2024"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.OnlySource, []string{"public.only_src"}) || !slices.Equal(res.OnlyTarget, []string{"public.only_dst"}) {
		t.Fatalf("only source %v, only target %v", res.OnlySource, res.OnlyTarget)
	}
	if res.Tables != 2 || len(res.Diffs) != 1 || res.Diffs[0].Table != "public.nokey" {
		t.Fatalf("want a column difference in public.nokey only:\n%s", res)
	}
	if _, err := Tables(ctx, src.Connect("shop"), dst.Connect("shop"), []string{"public.nowhere"}); err == nil {
		t.Fatal("a table found on neither side gave no error")
	}
}

// TestDatabaseSearchPath checks that values whose text names an object
// (regclass, regtype) compare equal when the source database has a search
// path of its own that makes them print unqualified.
func TestDatabaseSearchPath(t *testing.T) {
	src, dst := setup(t)
	for _, c := range []*pgtest.Cluster{src, dst} {
		c.Exec("shop", `CREATE TABLE public.refs (id int PRIMARY KEY, rel regclass, typ regtype)`,
			`CREATE TYPE "Shop".size AS ENUM ('s', 'm')`,
			`INSERT INTO public.refs VALUES (1, '"Shop"."Items"', '"Shop".size')`)
	}
	src.Exec("shop", `ALTER DATABASE shop SET search_path = "Shop", public`)
	if res := compareShop(t, src, dst); !res.Equal() {
		t.Fatalf("identical databases differ:\n%s", res)
	}
}
