-- The tricky cases of fixture.sql with built-in types only, so that a link
-- streams their values in binary form (see binary_test.go).
CREATE SCHEMA shop;
CREATE SCHEMA "Mixed Case";

-- Every built-in type of fixture.sql, and a few more; applied row by row
-- (GENERATED ALWAYS identity).
CREATE TABLE shop.types (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	n numeric, f float8, r real, b bytea, j json, jb jsonb,
	arr int[], tarr text[], rng int4range, tsr tstzrange,
	ts timestamp, tstz timestamptz, d date, iv interval, t time, u uuid,
	inet_v inet, bits bit varying(16), money_v money, x xml, pt point,
	i2 smallint, i4 int, bo boolean, vc varchar(20), ch char(3), tz timetz, cidr_v cidr, mac macaddr,
	big text,
	total numeric GENERATED ALWAYS AS (coalesce(n, 0) * 2) STORED
);
INSERT INTO shop.types (n, f, r, b, j, jb, arr, tarr, rng, tsr, ts, tstz, d, iv, t, u, inet_v, bits, money_v, x, pt,
	i2, i4, bo, vc, ch, tz, cidr_v, mac, big)
VALUES
 (1.5, 1e308, 'NaN', '\x00ff', '{"a": [1, 2]}', '{"b": null}', '{1,2,NULL}', '{"a b","c\"d",NULL}', '[1,10)',
  '[2020-01-01 00:00+00,infinity)', '2020-02-29 12:34:56.789', '2021-06-01 10:00:00+02',
  'infinity', '1 year 2 mons -3 days 04:05:06.789', '23:59:59.999999', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '192.168.1.0/24', B'1010', 12.34, '<a>x</a>', '(1.5,2)', -32768, 2147483647, true, 'vc', 'ab', '12:00+05:30',
  '10.0.0.0/8', '08:00:2b:01:02:03', repeat('toast', 5000)),
 ('NaN', '-Infinity', 'Infinity', '\x', '[]', '{}', '{}', '{}', 'empty', NULL, '-infinity', '-infinity',
  '-infinity', '0', '00:00', NULL, '::1', B'', -0.5, NULL, NULL, 0, 0, false, '', '', '00:00-12', '::/0', '00:00:00:00:00:00', ''),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 ('Infinity', 0, -0, '\xdeadbeef', 'null', '"s"', '{{1,2},{3,4}}', '{"NULL"}', '(,)', 'empty',
  '1999-12-31 23:59:59', '1999-12-31 23:59:59.5-08', '2000-01-01', '-178000000 years', '12:00', '00000000-0000-0000-0000-000000000000',
  '10.0.0.1', B'1111000011110000', 0, '<b/>', '(0,0)', 1, -1, NULL, 'x"y''z', 'a', '23:59:59.999999+14', '1.2.3.4/32',
  'ff:ff:ff:ff:ff:ff', 'x');

-- The same scalar types in a table whose changes are folded into
-- set-based statements (a plain key, no arrays).
CREATE TABLE shop.wide (
	id int PRIMARY KEY,
	n numeric, f float8, r real, b bytea, j json, jb jsonb, rng int4range, tsr tstzrange,
	ts timestamp, tstz timestamptz, d date, iv interval, t time, u uuid,
	inet_v inet, bits bit varying(16), money_v money, x xml, pt point,
	i2 smallint, bo boolean, vc varchar(20), ch char(3), tz timetz, mac macaddr,
	big text
);
INSERT INTO shop.wide SELECT g, g * 1.25, g / 3.0, g / 7.0, decode(md5(g::text), 'hex'), json_build_object('g', g),
	jsonb_build_object('g', g, 'a', ARRAY[g, -g]), int4range(g, g + 10), tstzrange(now() - g * interval '1 day', now()),
	timestamp '2020-01-01' + g * interval '1 hour 1 second', timestamptz '2020-01-01 00:00+00' + g * interval '1 minute',
	date '2000-01-01' + g, g * interval '1 day 3 seconds', time '00:00' + g * interval '1 second', md5(g::text)::uuid,
	('10.0.' || (g % 256) || '.1')::inet, (g % 65536)::bit(16)::varbit, g * 0.01, ('<r>' || g || '</r>')::xml, point(g, -g),
	(g % 30000)::smallint, g % 2 = 0, 'v' || g, 'c' || (g % 10), (time '00:00' + g * interval '1 minute')::timetz,
	('08:00:2b:01:02:' || lpad(to_hex(g % 256), 2, '0'))::macaddr,
	CASE WHEN g % 50 = 0 THEN repeat('toast' || g, 3000) ELSE 'small ' || g END
FROM generate_series(1, 1000) g;
UPDATE shop.wide SET n = NULL, j = NULL, u = NULL, tz = NULL WHERE id % 13 = 0;

CREATE TABLE "Mixed Case"."Order Items" ("Item ID" int PRIMARY KEY, "Qty" int NOT NULL, "Note" text);
INSERT INTO "Mixed Case"."Order Items" SELECT g, g % 7, 'note ' || g FROM generate_series(1, 500) g;

CREATE TABLE shop.events (at date NOT NULL, id int NOT NULL, what text, PRIMARY KEY (at, id)) PARTITION BY RANGE (at);
CREATE TABLE shop.events_2024 PARTITION OF shop.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE shop.events_2025 PARTITION OF shop.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO shop.events SELECT date '2024-06-01' + (g % 400), g, 'e' || g FROM generate_series(1, 2000) g;

-- REPLICA IDENTITY FULL, with types that have no equality (json, point).
CREATE TABLE shop.log (msg text, n int, j json, pt point);
ALTER TABLE shop.log REPLICA IDENTITY FULL;
INSERT INTO shop.log VALUES ('dup', 1, '{"k": 1}', '(1,1)'), ('dup', 1, '{"k": 1}', '(1,1)'), ('dup', 1, '{"k": 1}', '(1,1)'),
	('other', 2, NULL, NULL);

CREATE TABLE shop.by_index (code text NOT NULL, v int);
CREATE UNIQUE INDEX by_index_code ON shop.by_index (code);
ALTER TABLE shop.by_index REPLICA IDENTITY USING INDEX by_index_code;
INSERT INTO shop.by_index SELECT 'c' || g, g FROM generate_series(1, 100) g;

CREATE TABLE shop.customers (id serial PRIMARY KEY, name text NOT NULL, since timestamptz DEFAULT now());
CREATE TABLE shop.orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES shop.customers (id), amount numeric(12, 2));
INSERT INTO shop.customers (name) SELECT 'c' || g FROM generate_series(1, 300) g;
INSERT INTO shop.orders (customer_id, amount) SELECT 1 + g % 300, g * 1.25 FROM generate_series(1, 3000) g;
