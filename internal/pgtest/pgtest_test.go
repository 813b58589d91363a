package pgtest

import "testing"

func TestStartTwoClusters(t *testing.T) {
	a := Start(t, Options{})
	b := Start(t, Options{})
	if a.Port == b.Port {
		t.Fatalf("two clusters share port %d", a.Port)
	}
	if got, want := a.QueryString("postgres", "current_setting('wal_level')"), "logical"; got != want {
		t.Fatalf("wal_level = %q, want %q", got, want)
	}
	b.CreateDB("shop")
	b.Exec("shop", "CREATE TABLE t (id int primary key)", "INSERT INTO t VALUES (1), (2)")
	if got, want := b.QueryString("shop", "SELECT count(*) FROM t"), "2"; got != want {
		t.Fatalf("count = %s, want %s", got, want)
	}
}
