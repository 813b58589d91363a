package seed

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/catalog"
)

// TestPostDataDependentStatements runs post-data with many parallel
// sessions, again and again, on objects whose pg_dump entries hold
// statements that depend on their index: replica identity using the index,
// CLUSTER ON it, a constraint using an index, and a partitioned index with
// its partitions' indexes attached. Each run must succeed and match the source.
func TestPostDataDependentStatements(t *testing.T) {
	src, tgt := twoClusters(t)
	src.CreateDB("app")
	var ddl string
	for i := range 6 {
		ddl += fmt.Sprintf(`CREATE TABLE public.ri%[1]d (code text NOT NULL, v int);
			CREATE UNIQUE INDEX ri%[1]d_code ON public.ri%[1]d (code);
			ALTER TABLE public.ri%[1]d REPLICA IDENTITY USING INDEX ri%[1]d_code;
			CREATE INDEX ri%[1]d_v ON public.ri%[1]d (v);
			ALTER TABLE public.ri%[1]d CLUSTER ON ri%[1]d_v;
			CREATE TABLE public.uc%[1]d (id int NOT NULL);
			CREATE UNIQUE INDEX uc%[1]d_idx ON public.uc%[1]d (id);
			ALTER TABLE public.uc%[1]d ADD CONSTRAINT uc%[1]d_pk PRIMARY KEY USING INDEX uc%[1]d_idx;
			`, i)
	}
	ddl += `CREATE TABLE public.parted (at date NOT NULL, id int NOT NULL, PRIMARY KEY (at, id)) PARTITION BY RANGE (at);
		CREATE TABLE public.parted_a PARTITION OF public.parted FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
		CREATE TABLE public.parted_b PARTITION OF public.parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
		CREATE INDEX parted_id ON public.parted (id);`
	src.Exec("app", ddl)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tables, err := catalog.Tables(ctx, src.Connect("app"), catalog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	const indexes = `SELECT string_agg(indexrelid::regclass::text || ':' || indisreplident || indisclustered || indisprimary,
		',' ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid::regclass::text LIKE 'public.%' OR indrelid::regclass::text NOT LIKE '%.%'`
	want := src.QueryString("app", indexes)
	for run := range 5 {
		db := fmt.Sprintf("run%d", run)
		tgt.CreateDB(db)
		opts := SchemaOptions{Source: src.URL("app"), Target: tgt.URL(db), Tables: tables}
		if _, err := PreData(ctx, opts); err != nil {
			t.Fatalf("run %d: pre-data: %v", run, err)
		}
		if _, err := PostData(ctx, opts, 4); err != nil {
			t.Fatalf("run %d: post-data: %v", run, err)
		}
		if got := tgt.QueryString(db, indexes); got != want {
			t.Fatalf("run %d: indexes on the target\n%s\nwant\n%s", run, got, want)
		}
	}
}
