// Package seed makes the target a consistent copy of the source: the
// schema with pg_dump (pre-data before the data, post-data after it), and
// the data with COPY piped from source to target, in parallel jobs that
// all read one exported snapshot.
//
// Schema. pg_dump --schema-only writes a plain script; seed splits it into
// statements (following PostgreSQL's quoting rules, dropping psql
// meta-commands such as \restrict) and runs them itself, so psql is not
// needed and each failure names the object pg_dump's entry header names.
// Pre-data runs in one transaction on the target; post-data builds indexes
// and key constraints across sessions, then the rest in pg_dump's order,
// one statement at a time, so a rerun after a failure carries on. Owners
// and grants of roles the target lacks are dropped and reported, never
// created. Passwords reach pg_dump through PGPASSWORD, not its command
// line, and no error shows them.
//
// Data. Each part of a table (the whole table, one partition, or a key or
// block range of either) is one COPY ... TO STDOUT on a source session in
// the snapshot and one COPY ... FROM STDIN in its own target transaction;
// rows go through an in-memory pipe without being decoded. The binary
// format is used unless a column's binary form embeds type OIDs that
// differ between databases (arrays and composites of user-defined types),
// where the text format, which carries names, is used for that table.
package seed
