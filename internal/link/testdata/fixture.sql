-- Every tricky case the link must carry, created on the source by the tests.
CREATE SCHEMA shop;
CREATE SCHEMA "Mixed Case";
CREATE TYPE shop.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN shop.positive AS numeric CHECK (VALUE > 0);
CREATE TYPE shop.address AS (street text, zip int);

CREATE TABLE shop.types (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	n numeric, f float8, r real, b bytea, j json, jb jsonb,
	arr int[], tarr text[], rng int4range, tsr tstzrange,
	m shop.mood, p shop.positive, addr shop.address,
	ts timestamp, tstz timestamptz, d date, iv interval, t time, u uuid,
	inet_v inet, bits bit varying(16), money_v money, x xml, pt point,
	big text,
	total numeric GENERATED ALWAYS AS (coalesce(n, 0) * 2) STORED
);
INSERT INTO shop.types (n, f, r, b, j, jb, arr, tarr, rng, tsr, m, p, addr, ts, tstz, d, iv, t, u, inet_v, bits, money_v, x, pt, big)
VALUES
 (1.5, 1e308, 'NaN', '\x00ff', '{"a": [1, 2]}', '{"b": null}', '{1,2,NULL}', '{"a b","c\"d",NULL}', '[1,10)',
  '[2020-01-01 00:00+00,infinity)', 'happy', 3.25, ROW('Main St', 12345), '2020-02-29 12:34:56.789', '2021-06-01 10:00:00+02',
  'infinity', '1 year 2 mons -3 days 04:05:06.789', '23:59:59.999999', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '192.168.1.0/24', B'1010', 12.34, '<a>x</a>', '(1.5,2)', repeat('toast', 5000)),
 ('NaN', '-Infinity', 'Infinity', '\x', '[]', '{}', '{}', '{}', 'empty', NULL, 'sad', 0.001, ROW(NULL, NULL), '-infinity', '-infinity',
  '-infinity', '0', '00:00', NULL, '::1', B'', -0.5, NULL, NULL, ''),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 ('Infinity', 0, -0, '\xdeadbeef', 'null', '"s"', '{{1,2},{3,4}}', '{"NULL"}', '(,)', 'empty', 'ok', 99999999999999999999.5, ROW('q"uote''s', -1),
  '1999-12-31 23:59:59', '1999-12-31 23:59:59.5-08', '2000-01-01', '-178000000 years', '12:00', '00000000-0000-0000-0000-000000000000',
  '10.0.0.1', B'1111000011110000', 0, '<b/>', '(0,0)', 'x');

CREATE TABLE "Mixed Case"."Order Items" ("Item ID" int PRIMARY KEY, "Qty" int NOT NULL, "Note" text);
INSERT INTO "Mixed Case"."Order Items" SELECT g, g % 7, 'note ' || g FROM generate_series(1, 500) g;

CREATE TABLE shop.events (at date NOT NULL, id int NOT NULL, what text, PRIMARY KEY (at, id)) PARTITION BY RANGE (at);
CREATE TABLE shop.events_2024 PARTITION OF shop.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE shop.events_2025 PARTITION OF shop.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO shop.events SELECT date '2024-06-01' + (g % 400), g, 'e' || g FROM generate_series(1, 2000) g;

CREATE TABLE shop.log (msg text, n int);
ALTER TABLE shop.log REPLICA IDENTITY FULL;
INSERT INTO shop.log VALUES ('dup', 1), ('dup', 1), ('dup', 1), ('other', 2);

CREATE TABLE shop.by_index (code text NOT NULL, v int);
CREATE UNIQUE INDEX by_index_code ON shop.by_index (code);
ALTER TABLE shop.by_index REPLICA IDENTITY USING INDEX by_index_code;
INSERT INTO shop.by_index SELECT 'c' || g, g FROM generate_series(1, 100) g;

CREATE TABLE shop.customers (id serial PRIMARY KEY, name text NOT NULL, mood shop.mood);
CREATE TABLE shop.orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES shop.customers (id), amount numeric(12, 2));
INSERT INTO shop.customers (name, mood) SELECT 'c' || g, 'ok' FROM generate_series(1, 300) g;
INSERT INTO shop.orders (customer_id, amount) SELECT 1 + g % 300, g * 1.25 FROM generate_series(1, 3000) g;
CREATE FUNCTION shop.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.amount := NEW.amount; RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON shop.orders FOR EACH ROW EXECUTE FUNCTION shop.touch();
