package seed

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/report"
)

const appSchema = `
CREATE ROLE app_owner;
CREATE SCHEMA "Sales";
CREATE SCHEMA inventory;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TYPE pair AS (a int, b text);
CREATE TYPE moodpair AS (m mood, n int);
CREATE TYPE floatrange AS RANGE (subtype = float8);
CREATE TABLE public.kinds (
    id int PRIMARY KEY, m mood, moods mood[], d posint, p pair, mp moodpair, fr floatrange, ir int4range,
    n numeric, b bytea, j json, jb jsonb, ts timestamptz, iv interval, f8 float8, t text[],
    total numeric GENERATED ALWAYS AS (n * 2) STORED);
INSERT INTO public.kinds (id, m, moods, d, p, mp, fr, ir, n, b, j, jb, ts, iv, f8, t) VALUES
    (1, 'happy', '{sad,happy}', 7, '(1,"x y")', '(ok,3)', '[1.5,2.5)', '[1,10)', 'NaN', '\x00ff10',
     '{"a": [1, 2]}', '{"b": null}', '2024-02-29 23:59:59.123456+05', '1 year 2 days 03:04:05.6', 0.1, '{"a,b",NULL}'),
    (2, NULL, '{}', NULL, NULL, NULL, 'empty', NULL, 'Infinity', '', 'null', '[]', '-infinity', '-1 mons', 'NaN', '{}'),
    (3, 'sad', NULL, 1, '(,)', '(,)', '(,)', '(,)', '-Infinity', NULL, NULL, NULL, NULL, NULL, '-Infinity', NULL),
    (4, 'ok', '{ok}', 2, '(2,"")', '(happy,)', '[-1e308,1e308]', '[5,6]', 123456789.000000001, '\x', '"s"', '1.50', 'epoch', '0', 1e-300, '{"\""}');
CREATE TABLE "Sales"."Orders" ("OrderID" bigint PRIMARY KEY, "Customer Name" text NOT NULL, amount numeric(10,2));
INSERT INTO "Sales"."Orders" SELECT g, 'customer ' || g, g * 1.25 FROM generate_series(1, 20000) g;
CREATE INDEX "Orders_by_customer" ON "Sales"."Orders" ("Customer Name");
CREATE TABLE inventory.items (sku text, qty int, note text);
INSERT INTO inventory.items SELECT 'sku-' || g, g % 7, repeat('x', g % 50) FROM generate_series(1, 5000) g;
ALTER TABLE inventory.items OWNER TO app_owner;
CREATE TABLE public.events (id int, at date, payload text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.events SELECT g, date '2024-06-01' + (g % 400), 'p' || g FROM generate_series(1, 3000) g;
CREATE TABLE public.empty_root (id int) PARTITION BY LIST (id);
CREATE TABLE public.order_notes (id serial PRIMARY KEY, order_id bigint REFERENCES "Sales"."Orders", note text);
INSERT INTO public.order_notes (order_id, note) SELECT g, 'n' FROM generate_series(1, 100) g;
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.note := NEW.note || ';'; RETURN NEW; END $$;
CREATE TRIGGER touch BEFORE INSERT ON public.order_notes FOR EACH ROW EXECUTE FUNCTION public.touch();
CREATE VIEW public.big_orders AS SELECT * FROM "Sales"."Orders" WHERE amount > 100;
CREATE TABLE public.skipped (id serial PRIMARY KEY);
CREATE TABLE public.refs_skipped (id int PRIMARY KEY, s int REFERENCES public.skipped);
CREATE VIEW public.skipped_view AS SELECT * FROM public.skipped;
CREATE TABLE public.ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
INSERT INTO public.ident (v) VALUES ('a'), ('b');
DELETE FROM public.ident WHERE v = 'a';
GRANT SELECT ON "Sales"."Orders" TO app_owner;
ANALYZE;
`

// dump returns a table's rows as sorted text, for comparing two databases.
func dump(t *testing.T, c *pgtest.Cluster, db, table string) string {
	t.Helper()
	return c.QueryString(db, fmt.Sprintf(
		"SELECT coalesce(string_agg(x, E'\\n' ORDER BY x), '') FROM (SELECT r::text AS x FROM %s r) s", table))
}

func twoClusters(t *testing.T) (src, tgt *pgtest.Cluster) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); src = pgtest.Start(t, pgtest.Options{}) }()
	go func() { defer wg.Done(); tgt = pgtest.Start(t, pgtest.Options{}) }()
	wg.Wait()
	if src == nil || tgt == nil {
		t.FailNow()
	}
	return src, tgt
}

func TestSeed(t *testing.T) {
	src, tgt := twoClusters(t)
	t.Run("SchemaAndData", func(t *testing.T) { testSchemaAndData(t, src, tgt) })
	t.Run("Snapshot", func(t *testing.T) { testSnapshot(t, src, tgt) })
	t.Run("Cancel", func(t *testing.T) { testCancel(t, src, tgt) })
	t.Run("PreDataFailure", func(t *testing.T) { testPreDataFailure(t, src, tgt) })
	t.Run("Passwords", func(t *testing.T) { testPasswords(t, src, tgt) })
	t.Run("Ranges", func(t *testing.T) { testRanges(t, src) })
}

func testSchemaAndData(t *testing.T, src, tgt *pgtest.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src.CreateDB("app")
	src.Exec("app", appSchema)
	tgt.CreateDB("app")
	tables, err := catalog.Tables(ctx, src.Connect("app"), catalog.Filter{Exclude: []string{"skipped"}})
	if err != nil {
		t.Fatal(err)
	}
	opts := SchemaOptions{Source: src.URL("app"), Target: tgt.URL("app"), Tables: tables}
	rep, err := PreData(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rep.MissingRoles, []string{"app_owner"}; !reflect.DeepEqual(got, want) {
		t.Errorf("missing roles: got %v, want %v", got, want)
	}
	if !slices.ContainsFunc(rep.Skipped, func(s string) bool { return strings.Contains(s, "skipped_view") }) {
		t.Errorf("the view of a table left out should be reported: %q", rep.Skipped)
	}
	if got := tgt.QueryString("app", "to_regclass('public.skipped')"); got != "NULL" {
		t.Errorf("table left out exists on the target: %s", got)
	}
	// Indexes are post-data: not there before the copy.
	if got := tgt.QueryString("app", `to_regclass('"Sales"."Orders_by_customer"')`); got != "NULL" {
		t.Errorf("index made before the copy")
	}

	// The link makes the target read-only for everyone else from here on.
	tgt.Exec("app", "CREATE EXTENSION pg_visibility", "ALTER DATABASE app SET default_transaction_read_only = on")
	// A reader of public.kinds on the target: the copy may not wait for it
	// to empty the table, and loads it unfrozen.
	reader := tgt.Connect("app")
	if _, err := reader.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Exec(ctx, "SELECT count(*) FROM public.kinds"); err != nil {
		t.Fatal(err)
	}
	var progMu sync.Mutex
	orderParts := map[string]bool{}
	var done []string
	stats, err := Copy(ctx, CopyOptions{
		Source: config(t, src.URL("app")), Target: config(t, tgt.URL("app")), Tables: tables, Jobs: 3, SplitBytes: 200 << 10,
		Progress: func(p report.CopyProgress) {
			progMu.Lock()
			defer progMu.Unlock()
			if p.Table == "Sales.Orders" && p.Done {
				orderParts[p.Part] = true
			}
		},
		TableDone: func(ctx context.Context, tb catalog.Table, rows, bytes int64) error {
			done = append(done, fmt.Sprintf("%s:%d", tb.Key(), rows))
			return nil
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reader.Exec(ctx, "ROLLBACK")
	reader.Close(ctx)
	// Tables copied whole are loaded frozen (every page all-frozen), unless
	// they could not be emptied in the copy's transaction; tables copied in
	// parts or through a partitioned root are not.
	frozen := `SELECT string_agg(format('%s:%s', c.oid::regclass, v.all_frozen = c.pages), ' ' ORDER BY c.oid::regclass::text)
		FROM (SELECT oid, pg_relation_size(oid) / 8192 AS pages FROM pg_class WHERE oid IN
			('public.order_notes'::regclass, 'public.ident'::regclass, 'public.kinds'::regclass, '"Sales"."Orders"'::regclass)) c,
		pg_visibility_map_summary(c.oid) v`
	if got, want := tgt.QueryString("app", frozen), `"Sales"."Orders":f ident:t kinds:f order_notes:t`; got != want {
		t.Errorf("frozen after the copy: got %s, want %s", got, want)
	}
	slices.Sort(done)
	wantDone := []string{"Sales.Orders:20000", "inventory.items:5000", "public.empty_root:0", "public.events:3000", "public.ident:1", "public.kinds:4", "public.order_notes:100", "public.refs_skipped:0"}
	if !reflect.DeepEqual(done, wantDone) {
		t.Errorf("TableDone: got %v, want %v", done, wantDone)
	}
	if len(orderParts) < 3 {
		t.Errorf("Sales.Orders should be copied in several ranges, got parts %v", orderParts)
	}
	if stats.Tables != 8 || stats.Rows != 28105 || stats.Parts < 8 {
		t.Errorf("stats: got %+v", stats)
	}

	rep, err = PostData(ctx, opts, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("post-data skipped: %q", rep.Skipped)
	if !slices.ContainsFunc(rep.Skipped, func(s string) bool { return strings.Contains(s, "refs_skipped_s_fkey") }) {
		t.Errorf("the foreign key to a table left out should be reported: %q", rep.Skipped)
	}
	for _, tb := range []string{`"Sales"."Orders"`, "inventory.items", "public.events", "public.kinds", "public.order_notes", "public.big_orders", "public.ident"} {
		if got, want := dump(t, tgt, "app", tb), dump(t, src, "app", tb); got != want {
			t.Errorf("%s differs:\ntarget %.300s\nsource %.300s", tb, got, want)
		}
	}
	schemaObjects := `SELECT string_agg(x, ', ' ORDER BY x) FROM (
		SELECT indexrelid::regclass::text AS x FROM pg_index WHERE indrelid::regclass::text NOT LIKE 'pg_%'
		UNION ALL SELECT conname || ':' || contype::text FROM pg_constraint WHERE connamespace::regnamespace::text IN ('public', 'Sales')
		UNION ALL SELECT tgname FROM pg_trigger WHERE NOT tgisinternal) s
		WHERE x NOT LIKE '%skipped%'`
	srcObjects := src.QueryString("app", schemaObjects)
	if got := tgt.QueryString("app", schemaObjects); got != srcObjects {
		t.Errorf("indexes, constraints, triggers:\ntarget %s\nsource %s", got, srcObjects)
	}
	// A second PostData (a restart after a failure) finds everything made.
	rep, err = PostData(ctx, opts, 2)
	if err != nil || len(rep.Skipped) < 5 {
		t.Errorf("rerun of PostData: %v, skipped %d", err, len(rep.Skipped))
	}
}

func config(t *testing.T, url string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
