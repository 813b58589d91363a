package validate

import (
	"context"
	"testing"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestTableWithoutColumns checks that a table with no columns, which holds
// rows all the same, has its rows counted on both sides.
func TestTableWithoutColumns(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	for _, c := range []*pgtest.Cluster{src, dst} {
		c.CreateDB("app")
		c.Exec("app", `CREATE TABLE public.bare (); INSERT INTO public.bare SELECT FROM generate_series(1, 5)`)
	}
	tables, err := catalog.Tables(context.Background(), src.Connect("app"), catalog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Source: config(t, src.URL("app")), Target: config(t, dst.URL("app")), Tables: tables}
	rep := compare(t, o)
	if got := table(rep, "public.bare"); got.Method != MethodCount || got.SourceRows != 5 || got.TargetRows != 5 || !rep.Equal() {
		t.Errorf("public.bare: %+v (report equal: %v), want 5 rows counted on each side", got, rep.Equal())
	}
	dst.Exec("app", `INSERT INTO public.bare SELECT FROM generate_series(1, 2)`)
	rep = compare(t, o)
	if got := table(rep, "public.bare"); got.SourceRows != 5 || got.TargetRows != 7 || !got.Differs() || rep.Equal() {
		t.Errorf("public.bare: %+v (report equal: %v), want 5 rows on the source and 7 on the target, different", got, rep.Equal())
	}
}
