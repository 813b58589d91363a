package state

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/quote"
)

// A table created on the source while linked joins the link: the apply
// creates it on the target and records it as joining (TableJoining) in the
// transaction that commits the CREATE with its origin position; the link's
// process then adds it to the publication and copies it at a snapshot of
// its own, recording the snapshot's position as the table's sync LSN and
// the state TableCopied. A table recorded joining or copying while the link
// replicates is one whose copy is not done: the next process copies it
// again from the start.
const (
	TableJoining TableState = "joining" // created on the target, not copied yet

	EventTableJoined Event = "table_joined" // a table created on the source was copied and streams
)

// JoinRelSQL names the table that JoinTableSQL records, by the source's
// identity of it (schema-qualified, quoted as needed), in a setting of
// the apply's transaction: the name is the source's word and never goes
// into a statement's text.
const JoinRelSQL = `SELECT pg_catalog.set_config('pglink.join_rel', $1, true)`

// JoinTableSQL runs in the apply's transaction right after the source's
// CREATE TABLE: it guards the new table (and the partitions it already
// has) with the link's read-only trigger, records them in pglink.guards,
// and, when record is set, records the table in pglink.tables as joining
// (a new partition of a linked table is only guarded: its rows come
// through its root).
func JoinTableSQL(link string, record bool) string {
	lit, trig := quote.Literal(link), quote.Literal(NamesFor(link).Trigger)
	rec := ""
	if record {
		rec = `
	INSERT INTO pglink.tables (link, table_schema, table_name, state) VALUES (` + lit + `, s, n, 'joining')
		ON CONFLICT (link, table_schema, table_name) DO UPDATE SET state = 'joining', rows_copied = 0, bytes_copied = 0,
			sync_lsn = NULL, copy_started = NULL;`
	}
	return `DO $j$ DECLARE r regclass := pg_catalog.current_setting('pglink.join_rel')::regclass; p regclass; s text; n text;
BEGIN
	SELECT ns.nspname, c.relname INTO s, n FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace WHERE c.oid = r;
	FOR p IN SELECT r UNION SELECT relid FROM pg_catalog.pg_partition_tree(r) LOOP
		EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON %s', ` + trig + `, p);
		EXECUTE pg_catalog.format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION pglink.refuse_write()', ` + trig + `, p);
		INSERT INTO pglink.guards (link, rel) VALUES (` + lit + `, p) ON CONFLICT DO NOTHING;
	END LOOP;` + rec + `
END $j$`
}

// LoadJoining returns the link's tables whose copy is not done. Called
// while the link replicates (seeding is done), these are tables created
// on the source since.
func LoadJoining(ctx context.Context, conn *pgx.Conn, link string) ([]Table, error) {
	rows, err := LoadTables(ctx, conn, link)
	if err != nil {
		return nil, err
	}
	var out []Table
	for _, t := range rows {
		if t.State != TableCopied {
			out = append(out, t)
		}
	}
	return out, nil
}

// InPublication tells whether the source table rel is a member of
// publication pub.
func InPublication(ctx context.Context, conn *pgx.Conn, pub string, rel uint32) (bool, error) {
	var in bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
		WHERE p.pubname = $1 AND pr.prrelid = $2)`, pub, rel).Scan(&in)
	if err != nil {
		return false, fmt.Errorf("source: read publication %s: %w", pub, err)
	}
	return in, nil
}

// AddToPublication adds the source table (quoted, schema-qualified) to
// publication pub, unless it is a member already. The statement is no
// schema change for any link's capture (pglink.ddl_capture = off).
func AddToPublication(ctx context.Context, conn *pgx.Conn, pub string, rel uint32, table string) error {
	in, err := InPublication(ctx, conn, pub, rel)
	if err != nil || in {
		return err
	}
	_, err = conn.Exec(ctx, `BEGIN READ WRITE; SET LOCAL pglink.ddl_capture = off; ALTER PUBLICATION `+
		pgx.Identifier{pub}.Sanitize()+` ADD TABLE `+table+`; COMMIT`)
	if err != nil {
		conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return fmt.Errorf("source: add table %s to publication %s: %w (the link's user must own the table, or be a superuser)", table, pub, err)
	}
	return nil
}

// RecordJoined records a joining table copied at t.SyncLSN, with its
// history event, in one transaction: from its commit on, the apply
// applies the table's changes that commit at or after that position.
func RecordJoined(ctx context.Context, conn *pgx.Conn, link string, t Table) error {
	t.State = TableCopied
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := MarkTable(ctx, tx.Conn(), link, t); err != nil {
			return err
		}
		return AddHistory(ctx, tx.Conn(), link, EventTableJoined, fmt.Sprintf("%s copied at %s (%d rows)", t.Key(), t.SyncLSN, t.Rows))
	})
	if err != nil {
		return fmt.Errorf("target: record table %s joined: %w", t.Key(), err)
	}
	return nil
}

// ForgetJoining removes the record of a joining table that is gone on
// both sides (dropped on the source, and the drop carried).
func ForgetJoining(ctx context.Context, conn *pgx.Conn, link string, t Table) error {
	_, err := conn.Exec(ctx, `DELETE FROM pglink.tables WHERE link = $1 AND table_schema = $2 AND table_name = $3
		AND state <> 'copied' AND to_regclass(format('%I.%I', $2::text, $3::text)) IS NULL`, link, t.Schema, t.Name)
	if err != nil {
		return fmt.Errorf("target: forget table %s: %w", t.Key(), err)
	}
	return nil
}

// RefuseJoining returns an error when a table created on the source while
// linked is not copied yet: a planned failover would open a target that
// lacks its rows.
func (c *Control) RefuseJoining(ctx context.Context) error {
	rows, err := LoadJoining(ctx, c.conn, c.Name)
	if err != nil || len(rows) == 0 {
		return err
	}
	names := make([]string, len(rows))
	for i, t := range rows {
		names[i] = t.Key()
	}
	return fmt.Errorf("target: table(s) %s, created on the source while linked, are not copied yet; nothing was changed; "+
		"run the failover once pglink status shows them copied", strings.Join(names, ", "))
}
