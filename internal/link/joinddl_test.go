package link

import "testing"

func TestWithNoData(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"CREATE TABLE n AS SELECT 1 AS a", "CREATE TABLE n AS SELECT 1 AS a\nWITH NO DATA"},
		{"CREATE TABLE n AS SELECT 1 AS a;", "CREATE TABLE n AS SELECT 1 AS a\nWITH NO DATA"},
		{"create table n as select 1 as a with data ;", "create table n as select 1 as a WITH NO DATA"},
		{"CREATE TABLE n AS SELECT 1 AS a WITH NO DATA", "CREATE TABLE n AS SELECT 1 AS a WITH NO DATA"},
		{"CREATE TABLE n AS SELECT 1 AS a -- the rows\n", "CREATE TABLE n AS SELECT 1 AS a -- the rows\nWITH NO DATA"},
		{"CREATE TABLE n AS TABLE t", "CREATE TABLE n AS TABLE t\nWITH NO DATA"},
	} {
		if got := withNoData(c.in); got != c.want {
			t.Errorf("withNoData(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
