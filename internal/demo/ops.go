package demo

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/jackc/pgx/v5"
)

// op is one kind of workload transaction.
type op struct {
	name   string
	weight int
	run    func(ctx context.Context, tx pgx.Tx, w *Workload, rnd *rand.Rand) error
}

var ops = []op{
	{"new order", 4, newOrder},
	{"pay invoice", 2, payInvoice},
	{"update product", 3, updateProduct},
	{"rewrite description", 1, rewriteDescription},
	{"renumber invoice", 1, renumberInvoice},
	{"update customer", 2, updateCustomer},
	{"ship order", 2, shipOrder},
	{"delete order", 1, deleteOrder},
	{"review audit", 1, reviewAudit},
	{"new customer", 1, newCustomer},
}

var totalWeight = func() int {
	sum := 0
	for _, o := range ops {
		sum += o.weight
	}
	return sum
}()

func pickOp(rnd *rand.Rand) op {
	n := rnd.IntN(totalWeight)
	for _, o := range ops {
		if n < o.weight {
			return o
		}
		n -= o.weight
	}
	return ops[0]
}

// execAll runs statements that take no arguments but those given per statement.
func execAll(ctx context.Context, tx pgx.Tx, stmts ...stmt) error {
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
			return err
		}
	}
	return nil
}

type stmt struct {
	sql  string
	args []any
}

// newOrder inserts an order (into the current month's partition or the
// default one), its items, its total and its invoice.
func newOrder(ctx context.Context, tx pgx.Tx, w *Workload, rnd *rand.Rand) error {
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO shop.orders (customer_id, ordered_at, shipping, delivery_window)
		VALUES ($1, now(), ROW($2, 'City', NULL), tstzrange(now(), now() + interval '3 days')) RETURNING id`,
		w.customer(rnd), fmt.Sprintf("Street %d", rnd.IntN(1000))).Scan(&id)
	if err != nil {
		return err
	}
	return execAll(ctx, tx,
		stmt{`INSERT INTO shop.order_items (order_id, ordered_at, line, product_id, qty, unit_price)
			SELECT o.id, o.ordered_at, l, p.id, l, p.price FROM shop.orders o, generate_series(1, 3) l
			JOIN shop.products p ON p.id = ($2 + l) % $3 + 1 WHERE o.id = $1`, []any{id, w.product(rnd), w.products}},
		stmt{`UPDATE shop.orders SET total = (SELECT sum(amount) FROM shop.order_items WHERE order_id = $1)
			WHERE id = $1`, []any{id}},
		stmt{`INSERT INTO billing.invoices (order_id, amount, issued_at, due, meta)
			SELECT id, total, now(), interval '30 days', '{"channel": "api"}' FROM shop.orders WHERE id = $1`, []any{id}},
	)
}

// payInvoice marks an invoice paid and adds a payment: an insert into the
// table whose replica identity is a unique index.
func payInvoice(ctx context.Context, tx pgx.Tx, w *Workload, rnd *rand.Rand) error {
	return execAll(ctx, tx, stmt{`WITH i AS (
			UPDATE billing.invoices SET paid = true WHERE number = (SELECT number FROM billing.invoices
				WHERE order_id >= $1 ORDER BY order_id LIMIT 1) RETURNING number, amount)
		INSERT INTO billing.payments (invoice_number, seq, amount, paid_at, method)
		SELECT i.number, 1 + coalesce((SELECT max(seq) FROM billing.payments p WHERE p.invoice_number = i.number), 0),
			i.amount, now(), 'card' FROM i`, []any{w.order(rnd)}})
}

// updateProduct changes small columns of a product that mostly has a
// TOASTed description: the stream then carries the large value as unchanged.
func updateProduct(ctx context.Context, tx pgx.Tx, w *Workload, rnd *rand.Rand) error {
	id := w.largeProduct(rnd)
	if rnd.IntN(3) == 0 {
		id = w.product(rnd)
	}
	return execAll(ctx, tx, stmt{`UPDATE shop.products SET price = price + 0.01,
		attrs = jsonb_set(coalesce(attrs, '{}'), '{stock}', to_jsonb($2::int)) WHERE id = $1`, []any{id, rnd.IntN(100)}})
}

// rewriteDescription replaces a large, out-of-line value.
func rewriteDescription(ctx context.Context, tx pgx.Tx, w *Workload, rnd *rand.Rand) error {
	return execAll(ctx, tx, stmt{`UPDATE shop.products SET description =
		(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 300)) WHERE id = $1`,
		[]any{w.largeProduct(rnd)}})
}

// renumberInvoice changes a primary key; the foreign key cascades the
// change to the payments, whose identity index then changes too.
func renumberInvoice(ctx context.Context, tx pgx.Tx, w *Workload, rnd *rand.Rand) error {
	return execAll(ctx, tx, stmt{`UPDATE billing.invoices SET number = 'INV-' || nextval('billing.invoice_seq')
		WHERE number = (SELECT number FROM billing.invoices WHERE order_id >= $1 ORDER BY order_id LIMIT 1)`,
		[]any{w.order(rnd)}})
}

// updateCustomer changes composite, array and timestamptz values; the
// source's trigger writes an audit event in the same transaction.
func updateCustomer(ctx context.Context, tx pgx.Tx, w *Workload, rnd *rand.Rand) error {
	n := rnd.IntN(1000)
	return execAll(ctx, tx, stmt{`UPDATE shop.customers SET tags = ARRAY['w' || $2, NULL],
		address = ROW('Moved ' || $2, 'City', NULL)::shop.address,
		valid_until = CASE WHEN $3::int % 3 = 0 THEN 'infinity'::timestamptz ELSE now() + interval '1 year' END
		WHERE id = $1`, []any{w.customer(rnd), fmt.Sprint(n), n}})
}

// shipOrder updates an order in whatever partition holds it.
func shipOrder(ctx context.Context, tx pgx.Tx, w *Workload, rnd *rand.Rand) error {
	return execAll(ctx, tx, stmt{`UPDATE shop.orders SET status = 'shipped', delivery_window = tstzrange(now(), NULL)
		WHERE id = $1`, []any{w.order(rnd)}})
}

// deleteOrder deletes an order, its items (cascade), its invoice and the
// invoice's payments (cascade).
func deleteOrder(ctx context.Context, tx pgx.Tx, w *Workload, rnd *rand.Rand) error {
	id := w.order(rnd)
	return execAll(ctx, tx,
		stmt{`DELETE FROM billing.invoices WHERE order_id = $1`, []any{id}},
		stmt{`DELETE FROM shop.orders WHERE id = $1`, []any{id}})
}

// reviewAudit updates and deletes rows of the table without any key
// (REPLICA IDENTITY FULL), where identical rows exist.
func reviewAudit(ctx context.Context, tx pgx.Tx, _ *Workload, _ *rand.Rand) error {
	return execAll(ctx, tx,
		stmt{`UPDATE "Audit"."Events" SET "Action" = 'REVIEWED' WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM "Audit"."Events" WHERE "Action" = 'UPDATE' LIMIT 2))`, nil},
		stmt{`DELETE FROM "Audit"."Events" WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM "Audit"."Events" WHERE "Action" = 'REVIEWED' LIMIT 1))`, nil})
}

// newCustomer inserts a row with an identity value.
func newCustomer(ctx context.Context, tx pgx.Tx, _ *Workload, rnd *rand.Rand) error {
	return execAll(ctx, tx, stmt{`INSERT INTO shop.customers (email, "FullName", tags)
		VALUES ('new' || $1 || '@example.com', NULL, '{}')`, []any{fmt.Sprint(rnd.IntN(1_000_000))}})
}
