package catalog

import (
	"context"
	"testing"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestQuoteName checks QuoteIdentIfNeeded against the server's quote_ident
// on every keyword and on names that need quotes or not.
func TestQuoteName(t *testing.T) {
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
		if got := QuoteIdentIfNeeded(w); got != q {
			t.Errorf("QuoteIdentIfNeeded(%q) = %s, quote_ident gives %s", w, got, q)
		}
		n++
	}
	if rows.Err() != nil || n < 400 {
		t.Fatalf("compared %d names (%v)", n, rows.Err())
	}
	if got := QuoteName("Mixed Case", "my table"); got != `"Mixed Case"."my table"` {
		t.Errorf("QuoteName = %s", got)
	}
	if got := QuoteName("public", "plain"); got != "public.plain" {
		t.Errorf("QuoteName = %s", got)
	}
}
