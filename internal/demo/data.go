package demo

import (
	"fmt"
	"strings"
)

// shopData returns the statements that fill the shop. Values derive from
// row numbers, not random(), so two shops of one scale hold the same data.
// Special values follow the server version: numeric Infinity exists from
// PostgreSQL 14, interval infinity from PostgreSQL 17.
func shopData(scale, serverVersion int) []string {
	products := max(scale/20, 10)
	numericInf, intervalInf := "NULL", "NULL"
	if serverVersion >= 140000 {
		numericInf = "'Infinity'"
	}
	if serverVersion >= 170000 {
		intervalInf = "'infinity'"
	}
	r := strings.NewReplacer("$SCALE", fmt.Sprint(scale), "$PRODUCTS", fmt.Sprint(products),
		"$NUMERIC_INF", numericInf, "$INTERVAL_INF", intervalInf)
	sqls := make([]string, len(dataSQL))
	for i, s := range dataSQL {
		sqls[i] = r.Replace(s)
	}
	return sqls
}

var dataSQL = []string{
	`INSERT INTO shop.customers (email, "FullName", address, tags, created_at, valid_until)
	SELECT 'customer' || i || '@example.com',
		CASE WHEN i % 17 = 0 THEN NULL ELSE 'Customer ' || i END,
		CASE WHEN i % 11 = 0 THEN NULL
			ELSE ROW('Street ' || i, 'City ' || (i % 100), lpad((i % 99999)::text, 5, '0'))::shop.address END,
		CASE WHEN i % 5 = 0 THEN NULL WHEN i % 5 = 1 THEN '{}'::text[]
			ELSE ARRAY['tag' || (i % 7), 'a,b "c"', NULL] END,
		'2025-01-01 00:00:00+00'::timestamptz + i * interval '37 seconds',
		CASE WHEN i % 13 = 0 THEN 'infinity'::timestamptz WHEN i % 13 = 1 THEN '-infinity'::timestamptz END
	FROM generate_series(1, $SCALE) i`,

	`INSERT INTO shop.products (sku, name, price, weight_kg, attrs, image, description)
	SELECT 'SKU-' || i, 'Product ' || i, (i % 500) + 0.99,
		CASE WHEN i % 10 = 0 THEN 'NaN'::numeric WHEN i % 10 = 1 THEN $NUMERIC_INF::numeric
			WHEN i % 10 = 3 THEN NULL ELSE i * 0.125 END,
		jsonb_build_object('color', (ARRAY['red', 'green', 'blue'])[1 + i % 3], 'sizes', jsonb_build_array(i % 4, 'XL'),
			'nested', jsonb_build_object('on', i % 2 = 0, 'none', NULL)),
		CASE WHEN i % 3 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') END,
		CASE WHEN i % 25 = 1 THEN (SELECT string_agg(md5(i::text || g::text), '') FROM generate_series(1, 400) g)
			ELSE 'Short description ' || i END
	FROM generate_series(1, $PRODUCTS) i`,

	`INSERT INTO shop.orders (customer_id, ordered_at, status, shipping, delivery_window)
	SELECT 1 + (i * 7919) % $SCALE,
		'2025-01-01 00:00:00+00'::timestamptz + (i % 700) * interval '1 day' + (i % 86400) * interval '1 second',
		(ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + i % 4]::shop.order_status,
		CASE WHEN i % 9 = 0 THEN NULL ELSE ROW('Ship street ' || i, 'City', NULL)::shop.address END,
		CASE WHEN i % 6 = 0 THEN NULL WHEN i % 6 = 1 THEN 'empty'::tstzrange
			ELSE tstzrange('2025-02-01 00:00:00+00'::timestamptz + i * interval '1 hour',
				'2025-02-01 00:00:00+00'::timestamptz + i * interval '1 hour' + interval '2 days') END
	FROM generate_series(1, 3 * $SCALE) i`,

	`INSERT INTO shop.order_items (order_id, ordered_at, line, product_id, qty, unit_price)
	SELECT o.id, o.ordered_at, l, p.id, 1 + (o.id + l) % 5, p.price
	FROM shop.orders o CROSS JOIN generate_series(1, 2) l
	JOIN shop.products p ON p.id = 1 + (o.id * 31 + l) % $PRODUCTS`,

	`UPDATE shop.orders o SET total = s.total
	FROM (SELECT order_id, ordered_at, sum(amount) AS total FROM shop.order_items GROUP BY 1, 2) s
	WHERE o.id = s.order_id AND o.ordered_at = s.ordered_at`,

	`INSERT INTO billing.invoices (order_id, amount, issued_at, due, paid, pdf, meta)
	SELECT id, total, ordered_at + interval '1 hour',
		CASE WHEN id % 10 = 0 THEN NULL WHEN id % 10 = 2 THEN '1 mon 2 days 03:04:05.5'::interval
			WHEN id % 10 = 4 THEN $INTERVAL_INF::interval ELSE '30 days'::interval END,
		status IN ('paid', 'shipped'),
		CASE WHEN id % 4 = 0 THEN '\x00ff00'::bytea END,
		json_build_object('channel', 'web', 'note', CASE WHEN id % 8 = 0 THEN 'ünïcödé ✓ "quoted"' END)
	FROM shop.orders WHERE id % 2 = 0 ORDER BY id`,

	`INSERT INTO billing.payments (invoice_number, seq, amount, paid_at, method)
	SELECT number, 1, CASE WHEN order_id % 50 = 0 THEN 'NaN'::numeric ELSE amount END,
		issued_at + interval '1 day', (ARRAY['card', 'transfer', NULL])[1 + (order_id % 3)::int]
	FROM billing.invoices WHERE paid`,

	`INSERT INTO "Audit"."Events" ("At", "Table", "Action", "Data")
	SELECT '2025-01-01 00:00:00+00'::timestamptz + (i / 2) * interval '1 minute', 'shop.customers', 'UPDATE',
		jsonb_build_object('id', i / 2)
	FROM generate_series(1, $SCALE / 2 + 1) i`,
}
