package seed

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/report"
)

// testSnapshot copies from a logical slot's exported snapshot while the
// source keeps changing: the target must hold the rows as of the slot.
func testSnapshot(t *testing.T, src, tgt *pgtest.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src.CreateDB("snap")
	tgt.CreateDB("snap")
	src.Exec("snap", `CREATE TABLE public.t (id int PRIMARY KEY, v text)`,
		`INSERT INTO public.t SELECT g, 'before' FROM generate_series(1, 3000) g`,
		`CREATE TABLE public.u (v text)`, `INSERT INTO public.u SELECT 'u' || g FROM generate_series(1, 2000) g`)
	before := map[string]string{"public.t": dump(t, src, "snap", "public.t"), "public.u": dump(t, src, "snap", "public.u")}

	repl, err := pgconn.Connect(ctx, src.URL("snap")+"&replication=database")
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(context.Background())
	slot, err := pglogrepl.CreateReplicationSlot(ctx, repl, "seed_test", "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{SnapshotAction: "EXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Exec("snap", "SELECT pg_drop_replication_slot('seed_test')")
	src.Exec("snap", `INSERT INTO public.t SELECT g, 'after' FROM generate_series(3001, 4000) g`,
		`UPDATE public.t SET v = 'changed' WHERE id % 10 = 0`, `DELETE FROM public.t WHERE id < 100`,
		`INSERT INTO public.u VALUES ('late')`, `DELETE FROM public.u WHERE v LIKE 'u1%'`)

	tables, err := catalog.Tables(ctx, src.Connect("snap"), catalog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	// The schema as of the snapshot too (pg_dump --snapshot).
	if _, err := PreData(ctx, SchemaOptions{Source: src.URL("snap"), Target: tgt.URL("snap"), Snapshot: slot.SnapshotName}); err != nil {
		t.Fatal(err)
	}
	released := false
	_, err = Copy(ctx, CopyOptions{
		Source: config(t, src.URL("snap")), Target: config(t, tgt.URL("snap")), Snapshot: slot.SnapshotName,
		Tables: tables, Jobs: 2, SplitBytes: 16 << 10,
	}, func() {
		// The exporting session may go now: the imported snapshot lives on.
		if _, err := repl.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll(); err != nil {
			t.Errorf("release the snapshot: %v", err)
		}
		released = true
	})
	if err != nil {
		t.Fatal(err)
	}
	if !released {
		t.Errorf("imported was not called")
	}
	for table, want := range before {
		if got := dump(t, tgt, "snap", table); got != want {
			t.Errorf("%s: the target does not hold the rows of the snapshot (%d chars, want %d)", table, len(got), len(want))
		}
	}
	// A snapshot that no session exports any more is an error, not an
	// inconsistent copy.
	_, err = Copy(ctx, CopyOptions{Source: config(t, src.URL("snap")), Target: config(t, tgt.URL("snap")),
		Snapshot: slot.SnapshotName, Tables: tables, Jobs: 1}, func() { t.Error("imported called after a failed import") })
	if err == nil || !strings.Contains(err.Error(), "snapshot") {
		t.Errorf("copy from a released snapshot: got %v", err)
	}
}

// testCancel: a copy stopped midway leaves no rows of its unfinished part
// on the target (each part is one target transaction), and returns soon.
func testCancel(t *testing.T, src, tgt *pgtest.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src.CreateDB("cancel")
	tgt.CreateDB("cancel")
	const table = `CREATE TABLE public.big (id int PRIMARY KEY, v text)`
	src.Exec("cancel", table, `INSERT INTO public.big SELECT g, repeat('v', 100) FROM generate_series(1, 200000) g`)
	tgt.Exec("cancel", table)
	tables, err := catalog.Tables(ctx, src.Connect("cancel"), catalog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	copyCtx, stop := context.WithCancel(ctx)
	defer stop()
	var progressed atomic.Bool
	start := time.Now()
	_, err = Copy(copyCtx, CopyOptions{
		Source: config(t, src.URL("cancel")), Target: config(t, tgt.URL("cancel")), Tables: tables, Jobs: 1,
		Progress: func(p report.CopyProgress) {
			if p.Rows > 0 && !progressed.Swap(true) {
				stop()
			}
		},
		TableDone: func(context.Context, catalog.Table, int64, int64) error {
			t.Error("TableDone called for a cancelled copy")
			return nil
		},
	}, nil)
	if err == nil || !progressed.Load() {
		t.Fatalf("cancelled copy: got %v (progress seen: %v)", err, progressed.Load())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("cancelled copy took %v", d)
	}
	if got := tgt.QueryString("cancel", "SELECT count(*) FROM public.big"); got != "0" {
		t.Errorf("rows left on the target after a cancelled copy: %s", got)
	}
}

// testPreDataFailure: a table that already exists on the target makes
// PreData fail, and nothing else of the schema is left behind.
func testPreDataFailure(t *testing.T, src, tgt *pgtest.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src.CreateDB("conflict")
	tgt.CreateDB("conflict")
	src.Exec("conflict", `CREATE SCHEMA aaa`, `CREATE TYPE aaa.color AS ENUM ('red')`,
		`CREATE TABLE aaa.first (c aaa.color)`, `CREATE TABLE public.zzz (id int)`)
	tgt.Exec("conflict", `CREATE TABLE public.zzz (other text)`, `INSERT INTO public.zzz VALUES ('keep me')`)
	_, err := PreData(ctx, SchemaOptions{Source: src.URL("conflict"), Target: tgt.URL("conflict")})
	if err == nil || !strings.Contains(err.Error(), "zzz") {
		t.Fatalf("PreData over an existing table: got %v, want an error naming zzz", err)
	}
	if got := tgt.QueryString("conflict", "to_regnamespace('aaa')"); got != "NULL" {
		t.Errorf("schema aaa was left on the target")
	}
	if got := tgt.QueryString("conflict", "SELECT string_agg(other, ',') FROM public.zzz"); got != "keep me" {
		t.Errorf("target table changed: %s", got)
	}
}

// testPasswords: a password reaches pg_dump (through the environment) and
// shows in no error.
func testPasswords(t *testing.T, src, tgt *pgtest.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const secret = "S3cret-pw'x"
	src.CreateDB("pw")
	tgt.CreateDB("pw")
	src.Exec("pw", `CREATE TABLE public.t (id int)`, `CREATE TABLE public.private (id int)`,
		`CREATE ROLE dumper LOGIN PASSWORD 'S3cret-pw''x'`, `GRANT SELECT ON public.t TO dumper`)
	conn := fmt.Sprintf(`host=127.0.0.1 port=%d dbname=pw user=dumper password='S3cret-pw\'x' sslmode=disable`, src.Port)
	one, err := catalog.Tables(ctx, src.Connect("pw"), catalog.Filter{Include: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PreData(ctx, SchemaOptions{Source: conn, Target: tgt.URL("pw"), Tables: one}); err != nil {
		t.Fatalf("PreData with a password: %v", err)
	}
	// Without rights on public.private, pg_dump fails.
	_, err = PreData(ctx, SchemaOptions{Source: conn, Target: tgt.URL("pw")})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("PreData without rights: got %v", err)
	}
	if strings.Contains(err.Error(), "S3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
	bad := strings.Replace(conn, `S3cret-pw\'x`, "S3cret-wrong", 1)
	_, err = PreData(ctx, SchemaOptions{Source: bad, Target: tgt.URL("pw")})
	if err == nil || strings.Contains(err.Error(), "S3cret") {
		t.Errorf("wrong password: got %v", err)
	}
	_ = secret
}
