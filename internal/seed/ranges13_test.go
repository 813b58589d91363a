package seed

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/report"
)

// TestCopyRangesFromPostgreSQL13 copies a table bigger than the split size
// from a real PostgreSQL 13 server, which has no TID range scans: the
// table is copied in ranges of its primary key, and the target gets every
// row once, rows added after the cut included in no range twice.
func TestCopyRangesFromPostgreSQL13(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := pgtest.Start(t, pgtest.Options{Version: 13})
	tgt := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	tgt.CreateDB("app")
	const schema = `CREATE TABLE keyed (id int8 PRIMARY KEY, v text)`
	src.Exec("app", schema,
		`INSERT INTO keyed SELECT g, repeat(md5(g::text), 4) FROM generate_series(-5000, 20000) g`,
		`DELETE FROM keyed WHERE id % 11 = 0`, `ANALYZE`)
	tgt.Exec("app", schema)
	tables, err := catalog.Tables(ctx, src.Connect("app"), catalog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	parts := map[string]bool{}
	_, err = Copy(ctx, CopyOptions{Source: config(t, src.URL("app")), Target: config(t, tgt.URL("app")),
		Tables: tables, Jobs: 2, SplitBytes: 256 << 10,
		Progress: func(p report.CopyProgress) {
			mu.Lock()
			defer mu.Unlock()
			if p.Done {
				parts[p.Part] = true
			}
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("parts: %v", parts)
	if len(parts) < 3 {
		t.Errorf("the table should be copied in several primary-key ranges, got parts %v", parts)
	}
	if got, want := dump(t, tgt, "app", "public.keyed"), dump(t, src, "app", "public.keyed"); got != want {
		t.Errorf("the target differs from the source (%d and %d bytes of rows)", len(got), len(want))
	}
}
