package failover

import (
	"context"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// schemaSQL describes schema public as the catalog has it: every table's
// columns with their types, defaults and nullability, the indexes, the
// enum types with their labels in order, and the sequences with their
// settings and position.
const schemaSQL = `SELECT concat_ws(E'\n',
	(SELECT string_agg(format('%s.%s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
		coalesce(pg_get_expr(d.adbin, d.adrelid), '-'), a.attnotnull), E'\n' ORDER BY c.relname, a.attnum)
		FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped),
	(SELECT string_agg(indexdef, E'\n' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'),
	(SELECT string_agg(t.typname || ' ' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), E'\n' ORDER BY t.typname)
		FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace AND t.typtype = 'e'),
	(SELECT string_agg(format('%s %s %s %s %s', sequencename, data_type, start_value, increment_by, last_value), E'\n' ORDER BY sequencename)
		FROM pg_sequences WHERE schemaname = 'public'))`

// TestPlannedFailoverAfterSchemaChanges changes the source's schema under a
// writer (a column added and written, an index, an enum value added and
// used, a new sequence used) and fails over at once: every schema change
// made before the fence is on the target, whose schema then matches the
// source's, and the rows are the same on both sides.
func TestPlannedFailoverAfterSchemaChanges(t *testing.T) {
	f := newFixture(t, "ddlcut")
	f.src.Exec("app", `CREATE TYPE public.order_state AS ENUM ('new', 'paid')`,
		`ALTER TABLE orders ADD COLUMN state public.order_state NOT NULL DEFAULT 'new'`)
	f.startLink()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	w, wdone := f.startWriter(ctx)
	f.src.Exec("app",
		`ALTER TABLE accounts ADD COLUMN tier int DEFAULT 3`,
		`UPDATE accounts SET tier = id % 4 WHERE id % 3 = 0`,
		`INSERT INTO accounts (owner, tier) VALUES ('tiered', 9)`,
		`CREATE INDEX orders_amount ON orders (amount)`,
		`ALTER TYPE public.order_state ADD VALUE 'refunded'`,
		`UPDATE orders SET state = 'refunded' WHERE id % 10 = 0`,
		`CREATE SEQUENCE public.invoice_no START 1000`,
		`SELECT nextval('public.invoice_no') FROM generate_series(1, 5)`,
		`UPDATE accounts SET tier = nextval('public.invoice_no') WHERE id = 1`)

	p, err := Build(Options{Name: "ddlcut", Source: f.source, Target: f.target, Kind: Planned, Validate: true,
		Timeout: time.Minute, MaxLag: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res, err := runLogged(context.Background(), t, p)
	if err != nil {
		t.Fatalf("failover: %v\n%+v", err, res)
	}
	<-wdone
	if got, want := f.targetString(schemaSQL), queryString(f.source, schemaSQL); got != want || want == "" {
		t.Fatalf("the target's schema differs from the source's:\nsource:\n%s\ntarget:\n%s", want, got)
	}
	if n := f.targetString(`SELECT count(*)::text FROM pglink.history WHERE link = 'ddlcut' AND event = 'ddl_applied'`); n != "4" {
		t.Errorf("pglink.history holds %s applied schema changes, want 4", n)
	}
	f.assertFailedOver(t, w, false)
	if err := pgtest.ExecOn(f.target, `INSERT INTO orders (account, amount, state) VALUES (1, 1, 'refunded')`); err != nil {
		t.Errorf("the target refuses the enum value added on the source: %v", err)
	}
}
