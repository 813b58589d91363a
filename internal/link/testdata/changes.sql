-- Changes of every kind, run on the source while the link streams.
UPDATE shop.types SET n = n + 1, f = 3.5 WHERE id = 1;             -- big TOAST value unchanged
UPDATE shop.types SET big = repeat('changed', 4000) WHERE id = 2;
UPDATE shop.types SET id = DEFAULT WHERE id = 3;                     -- identity GENERATED ALWAYS key changes
DELETE FROM shop.types WHERE id = 4;
INSERT INTO shop.types (n, jb, arr, m, tstz, big) VALUES (-1.000, '{"new": true}', '{7}', 'sad', now(), repeat('y', 9000));
UPDATE "Mixed Case"."Order Items" SET "Item ID" = "Item ID" + 10000 WHERE "Item ID" <= 10;  -- key changes
DELETE FROM "Mixed Case"."Order Items" WHERE "Item ID" BETWEEN 100 AND 149;
UPDATE "Mixed Case"."Order Items" SET "Note" = NULL WHERE "Item ID" BETWEEN 200 AND 220;
UPDATE shop.events SET at = '2025-03-01' WHERE id = 5;                                        -- moves partition
INSERT INTO shop.events SELECT date '2025-02-01', g, 'late' FROM generate_series(5000, 5100) g;
DELETE FROM shop.events WHERE id BETWEEN 10 AND 20;
DELETE FROM shop.log WHERE ctid = (SELECT ctid FROM shop.log WHERE msg = 'dup' LIMIT 1);        -- one of three duplicates
UPDATE shop.log SET n = 3 WHERE msg = 'other';
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
TRUNCATE shop.orders, shop.customers RESTART IDENTITY;
INSERT INTO shop.customers (name) SELECT 'after truncate ' || g FROM generate_series(1, 50) g;
INSERT INTO shop.orders (customer_id, amount) SELECT 1 + g % 50, g FROM generate_series(1, 200) g;
