package validate

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestCutRange checks that the chunks of an integer key range are ordered,
// cover every int64 (open at both ends), and number about rows/n.
func TestCutRange(t *testing.T) {
	cases := []struct {
		lo, hi, rows, n int64
		want            int // chunks
	}{
		{1, 1, 1, 1000, 1},
		{1, 5000000, 5000000, 10000, 500},
		{-2000, 1999, 4000, 1000, 4},
		{0, 9, 0, 1000, 1},                      // estimate 0: one chunk
		{0, 9, 1000, 1, 10},                     // more chunks wanted than keys: one key each
		{math.MinInt64, math.MaxInt64, 2, 1, 2}, // the whole int64 range
		{math.MinInt64, math.MaxInt64, 1 << 20, 1, 1 << 20},
		{math.MaxInt64 - 10, math.MaxInt64, 100, 1, 11},
	}
	for _, c := range cases {
		got := cutRange(c.lo, c.hi, c.rows, c.n)
		if len(got) != c.want {
			t.Errorf("cutRange(%d, %d, %d, %d): %d chunks, want %d", c.lo, c.hi, c.rows, c.n, len(got), c.want)
		}
		if got[0].lo != nil || got[len(got)-1].hi != nil {
			t.Errorf("cutRange(%d, %d, %d, %d): ends not open: %v %v", c.lo, c.hi, c.rows, c.n, got[0], got[len(got)-1])
		}
		prev := int64(math.MinInt64)
		for i := 1; i < len(got); i++ {
			if strings.Join(got[i].lo, ",") != strings.Join(got[i-1].hi, ",") {
				t.Fatalf("cutRange(%d, %d, %d, %d): chunk %d does not start where %d ends", c.lo, c.hi, c.rows, c.n, i, i-1)
			}
			b, err := strconv.ParseInt(got[i].lo[0], 10, 64)
			if err != nil || b <= prev || b <= c.lo || b > c.hi {
				t.Fatalf("cutRange(%d, %d, %d, %d): boundary %d = %q out of order or range", c.lo, c.hi, c.rows, c.n, i, got[i].lo[0])
			}
			prev = b
		}
	}
}

const intKeySchema = `
CREATE TABLE public.gaps (id bigint PRIMARY KEY, v text);
INSERT INTO public.gaps SELECT g * abs(g) * 7 - 100, 'v' || g FROM generate_series(-300, 300) g;
CREATE TABLE public.small (id smallint PRIMARY KEY, v int);
INSERT INTO public.small SELECT g, g FROM generate_series(-32768, 32767, 3) g;
CREATE TABLE public.empty (id int PRIMARY KEY);
CREATE TABLE public.one (id int PRIMARY KEY, v text);
INSERT INTO public.one VALUES (42, 'only');
CREATE TABLE public.extremes (id bigint PRIMARY KEY);
INSERT INTO public.extremes VALUES (-9223372036854775808), (0), (9223372036854775807);
CREATE TABLE public.num (id int PRIMARY KEY, v numeric);
INSERT INTO public.num SELECT g, 1.0 FROM generate_series(1, 3000) g;
CREATE TABLE public.numnokey (v numeric);
INSERT INTO public.numnokey VALUES (1.0), (2.50);
`

// TestIntegerKeyChunks compares tables whose key is one integer column,
// chunked by the key's range: gaps, negative keys, an empty table, one row,
// the whole bigint range, keys on the target outside the source's range,
// and the same numeric value written differently (1.0 and 1.00), which the
// comparison of the rows' text must find.
func TestIntegerKeyChunks(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	for _, c := range []*pgtest.Cluster{src, dst} {
		c.CreateDB("app")
		c.Exec("app", intKeySchema)
	}
	ctx := context.Background()
	tables, err := catalog.Tables(ctx, src.Connect("app"), catalog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Source: config(t, src.URL("app")), Target: config(t, dst.URL("app")), Tables: tables, ChunkRows: 100}
	rep := compare(t, o)
	if !rep.Equal() {
		var b strings.Builder
		rep.WriteTable(&b)
		t.Fatalf("identical databases reported different:\n%s", b.String())
	}
	for name, rows := range map[string]int64{"public.gaps": 601, "public.small": 21846, "public.empty": 0, "public.one": 1, "public.extremes": 3, "public.num": 3000} {
		r := table(rep, name)
		if r.Method != MethodChunks || r.SourceRows != rows || r.TargetRows != rows {
			t.Errorf("%s: %+v, want %d rows by key", name, r, rows)
		}
	}
	if r := table(rep, "public.small"); r.Chunks < 100 {
		t.Errorf("public.small: %d chunks for 21846 rows of 100", r.Chunks)
	}

	dst.Exec("app",
		`UPDATE public.gaps SET v = 'changed' WHERE id IN (-630100, 6200)`, // g = -300 and 30
		`DELETE FROM public.gaps WHERE id = -100`,                          // g = 0
		`INSERT INTO public.gaps VALUES (-9000000, 'below'), (9000000, 'above')`,
		`UPDATE public.small SET v = 0 WHERE id = -32768`,
		`INSERT INTO public.empty VALUES (-5), (7)`,
		`UPDATE public.one SET v = 'other'`,
		`DELETE FROM public.extremes WHERE id = 9223372036854775807`,
		`UPDATE public.num SET v = 1.00 WHERE id = 2999`,
		`UPDATE public.numnokey SET v = 2.5 WHERE v = 2.50`)
	rep = compare(t, o)
	checkKeys(t, rep, "public.gaps", []string{"(-100)"}, []string{"(-9000000)", "(9000000)"}, []string{"(-630100)", "(6200)"})
	checkKeys(t, rep, "public.small", nil, nil, []string{"(-32768)"})
	checkKeys(t, rep, "public.empty", nil, []string{"(-5)", "(7)"}, nil)
	checkKeys(t, rep, "public.one", nil, nil, []string{"(42)"})
	checkKeys(t, rep, "public.extremes", []string{"(9223372036854775807)"}, nil, nil)
	checkKeys(t, rep, "public.num", nil, nil, []string{"(2999)"})
	checkKeys(t, rep, "public.numnokey", []string{"(2.50)"}, []string{"(2.5)"}, nil)
}

// TestRowTextOnce checks that the chunk summary converts each row to text
// once: the planner flattens a plain subquery and would compute the text
// once per hash.
func TestRowTextOnce(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", intKeySchema)
	ctx := context.Background()
	conn := src.Connect("app")
	tables, err := catalog.Tables(ctx, conn, catalog.Filter{Include: []string{"public.num"}})
	if err != nil || len(tables) != 1 {
		t.Fatalf("tables %v: %v", tables, err)
	}
	k, err := newKeyed(tables[0], []string{"id", "v"}, []string{"id"})
	if err != nil {
		t.Fatal(err)
	}
	where, args := k.where(chunk{lo: []string{"1"}, hi: []string{"100"}})
	rows, err := conn.Query(ctx, "EXPLAIN (VERBOSE) "+k.summarySQL(where), args...)
	if err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// The scan computes the text once; the hashes take the scan's output
	// (printed in double parentheses), never compute it themselves.
	p := plan.String()
	if !strings.Contains(p, "Output: (ROW(t.id, t.v))::text\n") || strings.Contains(p, "hashtextextended((ROW(") {
		t.Errorf("the row's text is not computed once per row:\n%s", p)
	}
}
