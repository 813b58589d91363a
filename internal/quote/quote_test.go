package quote

import (
	"context"
	"testing"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestQuoteName checks IdentIfNeeded against the server's quote_ident
// on every keyword and on names that need quotes or not.
func TestName(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	conn := c.Connect("postgres")
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT w, quote_ident(w) FROM (SELECT word FROM pg_get_keywords()
		UNION ALL SELECT unnest(ARRAY['plain', 'Mixed Case', 'my table', '_x1', '1abc', 'a$b', 'é', 'say "hi"', 'a.b', ''])) s(w)`)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for rows.Next() {
		var w, q string
		if err := rows.Scan(&w, &q); err != nil {
			t.Fatal(err)
		}
		if got := IdentIfNeeded(w); got != q {
			t.Errorf("IdentIfNeeded(%q) = %s, quote_ident gives %s", w, got, q)
		}
		n++
	}
	if rows.Err() != nil || n < 400 {
		t.Fatalf("compared %d names (%v)", n, rows.Err())
	}
	if got := Name("Mixed Case", "my table"); got != `"Mixed Case"."my table"` {
		t.Errorf("QuoteName = %s", got)
	}
	if got := Name("public", "plain"); got != "public.plain" {
		t.Errorf("QuoteName = %s", got)
	}
}

func TestIdentLiteralFirstLine(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Ident(`a"b`), `"a""b"`},
		{Ident("plain"), `"plain"`},
		{Literal("it's"), `'it''s'`},
		{FirstLine("SELECT 1", 0), "SELECT 1"},
		{FirstLine("  SELECT 1\nFROM t\n", 0), "SELECT 1 ..."},
		{FirstLine("SELECT 1\n  \n", 0), "SELECT 1"},
		{FirstLine("SELECT 123456", 6), "SELECT..."},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
