package seed

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/pgtest"
)

// testRanges: the predicates a table is cut into cover every row exactly
// once, rows added after the cut included, both as PostgreSQL 14+ cuts
// (ctid blocks) and as PostgreSQL 13 does (integer key, or one part).
func testRanges(t *testing.T, src *pgtest.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src.CreateDB("ranges")
	src.Exec("ranges", `
CREATE TABLE keyed (id int8 PRIMARY KEY, v text);
INSERT INTO keyed SELECT g, repeat('v', g % 90) FROM generate_series(-1000, 3000) g;
DELETE FROM keyed WHERE id % 7 = 0;
CREATE TABLE unkeyed (v text);
INSERT INTO unkeyed SELECT repeat('u', g % 90) FROM generate_series(1, 4000) g;
ANALYZE;`)
	conn := src.Connect("ranges")
	tables, err := catalog.Tables(ctx, conn, catalog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 2 {
		t.Fatalf("tables: got %d, want 2", len(tables))
	}
	type cut struct {
		table string
		preds []string
	}
	var cuts []cut
	for _, version := range []int{150000, 130000} {
		for _, tb := range tables {
			preds, err := ranges(ctx, conn, tb, units(tb)[0], 4, version)
			if err != nil {
				t.Fatalf("ranges(%s, %d): %v", tb.Key(), version, err)
			}
			want, kind := 4, "ctid"
			if version < 140000 {
				kind = `"id"`
				if tb.Name == "unkeyed" {
					want = 1
				}
			}
			if len(preds) != want || (want > 1 && !strings.HasPrefix(preds[0], kind+" ")) {
				t.Errorf("ranges(%s, %d): got %q, want %d parts on %s", tb.Key(), version, preds, want, kind)
			}
			cuts = append(cuts, cut{tb.QualifiedName(), preds})
		}
	}
	// Rows that arrive after the cut land past the last bound.
	src.Exec("ranges", `INSERT INTO keyed SELECT g, 'late' FROM generate_series(100000, 100500) g;
INSERT INTO unkeyed SELECT 'late' FROM generate_series(1, 500)`)
	for _, c := range cuts {
		var selects []string
		for _, p := range c.preds {
			where := ""
			if p != "" {
				where = " WHERE " + p
			}
			selects = append(selects, fmt.Sprintf("SELECT ctid FROM ONLY %s%s", c.table, where))
			if n := src.QueryString("ranges", fmt.Sprintf("SELECT count(*) FROM ONLY %s%s", c.table, where)); n == "0" {
				t.Errorf("%s: part %q is empty", c.table, p)
			}
		}
		got := src.QueryString("ranges", fmt.Sprintf("SELECT format('%%s rows, %%s distinct', count(*), count(DISTINCT ctid)) FROM (%s) s",
			strings.Join(selects, " UNION ALL ")))
		total := src.QueryString("ranges", "SELECT count(*) FROM ONLY "+c.table)
		if want := fmt.Sprintf("%s rows, %s distinct", total, total); got != want {
			t.Errorf("%s cut into %q: got %s, want %s", c.table, c.preds, got, want)
		}
	}
}

// TestSplitFor: tables are kept whole (and frozen) when both servers
// share pglink's few cores, and split at the default size otherwise.
func TestSplitFor(t *testing.T) {
	conf := func(host string) *pgx.ConnConfig {
		c, err := pgx.ParseConfig("host=" + host + " dbname=x")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, c := range []struct {
		src, tgt string
		cores    int
		whole    bool
	}{
		{"127.0.0.1", "localhost", 2, true},
		{"/var/run/postgresql", "::1", 3, true},
		{"127.0.0.1", "127.0.0.1", 4, false},
		{"127.0.0.1", "db.example.com", 2, false},
		{"10.0.0.5", "127.0.0.1", 2, false},
	} {
		bytes, why := splitFor(conf(c.src), conf(c.tgt), c.cores)
		if got := why != ""; got != c.whole || (c.whole && splitCount(1<<40, bytes) != 1) || (!c.whole && bytes != DefaultSplitBytes) {
			t.Errorf("%s -> %s on %d cores: split at %d (%q), want whole=%v", c.src, c.tgt, c.cores, bytes, why, c.whole)
		}
	}
}
