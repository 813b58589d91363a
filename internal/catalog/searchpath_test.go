package catalog

import (
	"context"
	"testing"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestTypesNamedWhateverSearchPath checks that column types are named
// schema-qualified whatever the session's search path, in a session of its
// own and inside a caller's transaction, and that the session keeps its
// search path.
func TestTypesNamedWhateverSearchPath(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.CreateDB("cat")
	c.Exec("cat", `CREATE SCHEMA abc`, `CREATE TYPE abc.state AS ENUM ('a', 'b')`,
		`CREATE TABLE public.t (s abc.state, ss abc.state[], v varchar(20), n integer)`,
		`ALTER DATABASE cat SET search_path = abc, public`)
	ctx := context.Background()
	conn := c.Connect("cat")
	want := []string{"abc.state", "abc.state[]", "character varying(20)", "integer"}
	check := func(when string) {
		t.Helper()
		tables, err := Tables(ctx, conn, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for i, col := range tables[0].Columns {
			if col.Type != want[i] {
				t.Errorf("%s: column %s is of type %q, want %q", when, col.Name, col.Type, want[i])
			}
		}
		var path string
		if err := conn.QueryRow(ctx, `SHOW search_path`).Scan(&path); err != nil || path != "abc, public" {
			t.Errorf("%s: the session's search path became %q (%v)", when, path, err)
		}
	}
	check("idle session")
	if _, err := conn.Exec(ctx, `BEGIN ISOLATION LEVEL REPEATABLE READ`); err != nil {
		t.Fatal(err)
	}
	check("in a transaction")
	if _, err := conn.Exec(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	check("after the transaction")
}
