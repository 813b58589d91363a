package validate

import (
	"context"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestDatabaseSearchPath checks that a source database with a search path
// of its own, where a type of another schema is visible unqualified, is
// compared column by column with a target that has the default search
// path: the same type on both sides is the same type, and a key of that
// type is cut into chunks on both.
func TestDatabaseSearchPath(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	const schema = `
CREATE SCHEMA abc;
CREATE TYPE abc.state AS ENUM ('new', 'paid', 'sent');
CREATE TABLE abc.steps (s abc.state, n int, PRIMARY KEY (s, n));
INSERT INTO abc.steps SELECT (ARRAY['new', 'paid', 'sent'])[1 + g % 3]::abc.state, g FROM generate_series(1, 3000) g;
CREATE TABLE public.orders (id int PRIMARY KEY, s abc.state, ss abc.state[], rel regclass);
INSERT INTO public.orders SELECT g, 'paid', '{new,sent}', 'abc.steps' FROM generate_series(1, 3000) g;`
	for _, c := range []*pgtest.Cluster{src, dst} {
		c.CreateDB("app")
		c.Exec("app", schema)
	}
	src.Exec("app", `ALTER DATABASE app SET search_path = abc, public`)
	ctx := context.Background()
	tables, err := catalog.Tables(ctx, src.Connect("app"), catalog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Source: config(t, src.URL("app")), Target: config(t, dst.URL("app")), Tables: tables, ChunkRows: 500}
	rep := compare(t, o)
	if !rep.Equal() {
		var b strings.Builder
		rep.WriteTable(&b)
		t.Fatalf("identical databases reported different:\n%s", b.String())
	}
	if got := table(rep, "abc.steps"); got.Chunks < 4 || got.SourceRows != 3000 {
		t.Errorf("abc.steps: %+v, want 3000 rows in chunks by its enum key", got)
	}

	dst.Exec("app", `UPDATE public.orders SET s = 'sent' WHERE id = 42`, `UPDATE abc.steps SET n = -n WHERE n = 7`)
	rep = compare(t, o)
	checkKeys(t, rep, "public.orders", nil, nil, []string{"(42)"})
	checkKeys(t, rep, "abc.steps", []string{"(paid,7)"}, []string{"(paid,-7)"}, nil)
	if len(rep.Different) > 0 {
		t.Errorf("column types reported different: %v", rep.Different)
	}
}
