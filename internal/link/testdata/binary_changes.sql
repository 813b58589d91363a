-- Changes of every kind on binary_fixture.sql, run on the source while the
-- link streams.
UPDATE shop.types SET n = n + 1, f = 3.5 WHERE id = 1;             -- big TOAST value unchanged
UPDATE shop.types SET big = repeat('changed', 4000) WHERE id = 2;
UPDATE shop.types SET id = DEFAULT WHERE id = 3;                     -- identity GENERATED ALWAYS key changes
DELETE FROM shop.types WHERE id = 4;
INSERT INTO shop.types (n, jb, arr, tstz, i4, bo, big) VALUES (-1.000, '{"new": true}', '{7}', now(), 7, true, repeat('y', 9000));
UPDATE shop.wide SET f = f * 2, bo = NOT bo, tstz = tstz + interval '1 second' WHERE id % 3 = 0;   -- big unchanged where TOASTed
UPDATE shop.wide SET id = id + 100000 WHERE id BETWEEN 1 AND 60;                                      -- key changes, TOAST unchanged
UPDATE shop.wide SET big = 'now small' WHERE id = 100050;
DELETE FROM shop.wide WHERE id BETWEEN 200 AND 260;
INSERT INTO shop.wide (id, n, b, u, ts, d, big) SELECT g, -g, '\x00', gen_random_uuid(), now()::timestamp, current_date, repeat('n', g)
	FROM generate_series(5000, 5400) g;
UPDATE shop.wide SET n = NULL, b = NULL, pt = NULL, x = NULL WHERE id BETWEEN 300 AND 320;
BEGIN;
INSERT INTO shop.wide (id, n) VALUES (9000, 1);
UPDATE shop.wide SET n = 2 WHERE id = 9000;
DELETE FROM shop.wide WHERE id = 9000;
INSERT INTO shop.wide (id, n) VALUES (9000, 3);
UPDATE shop.wide SET id = 9001 WHERE id = 9000;
COMMIT;
UPDATE "Mixed Case"."Order Items" SET "Item ID" = "Item ID" + 10000 WHERE "Item ID" <= 10;  -- key changes
DELETE FROM "Mixed Case"."Order Items" WHERE "Item ID" BETWEEN 100 AND 149;
UPDATE "Mixed Case"."Order Items" SET "Note" = NULL WHERE "Item ID" BETWEEN 200 AND 220;
UPDATE shop.events SET at = '2025-03-01' WHERE id = 5;                                        -- moves partition
INSERT INTO shop.events SELECT date '2025-02-01', g, 'late' FROM generate_series(5000, 5100) g;
DELETE FROM shop.events WHERE id BETWEEN 10 AND 20;
DELETE FROM shop.log WHERE ctid = (SELECT ctid FROM shop.log WHERE msg = 'dup' LIMIT 1);        -- one of three duplicates
UPDATE shop.log SET n = 3 WHERE msg = 'other';
UPDATE shop.log SET pt = '(2,2)' WHERE ctid = (SELECT ctid FROM shop.log WHERE msg = 'dup' LIMIT 1);
UPDATE shop.by_index SET code = 'renamed' WHERE code = 'c1';
UPDATE shop.by_index SET v = -v WHERE v BETWEEN 2 AND 50;
BEGIN;
INSERT INTO shop.customers (name) VALUES ('in txn');
SAVEPOINT s1;
INSERT INTO shop.customers (name) VALUES ('rolled back');
ROLLBACK TO SAVEPOINT s1;
UPDATE shop.orders SET amount = amount * 2 WHERE id % 10 = 0;
COMMIT;
BEGIN;
DELETE FROM shop.orders WHERE id > 2900;
ROLLBACK;
DELETE FROM shop.orders WHERE id % 7 = 0;
TRUNCATE shop.orders, shop.customers RESTART IDENTITY;
INSERT INTO shop.customers (name) SELECT 'after truncate ' || g FROM generate_series(1, 50) g;
INSERT INTO shop.orders (customer_id, amount) SELECT 1 + g % 50, g FROM generate_series(1, 200) g;
