package link

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/apply"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/quote"
	"github.com/pglink/pglink/internal/state"
)

// newTableSQL describes a table created on the source, as it is now: its
// schema and name, whether the link could carry it (an ordinary or
// partitioned table, logged, not an extension's), and the top of its
// partition tree when it is a partition.
const newTableSQL = `SELECT n.nspname, c.relname, c.relkind IN ('r', 'p') AND c.relpersistence = 'p'
	AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'),
	CASE WHEN c.relispartition THEN pg_partition_root(c.oid)::oid END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1`

// createTags are the command tags that make a table.
var createTags = map[string]bool{"CREATE TABLE": true, "CREATE TABLE AS": true, "SELECT INTO": true}

// joinNew carries a CREATE TABLE of the source that touches no linked
// table (scopeUnlinked), when it makes a table that joins the link: one
// the link's filters select (not a partition), or a partition of a linked
// table, whose rows come through its root. The statement runs on the
// target as any carried one, and JoinTableSQL guards the table and records
// it joining, in the same transaction. ok is false when the schema change
// is no such one: it is then left out, as before.
func (d *ddlCarrier) joinNew(ctx context.Context, c *change.Change, p ddlPayload) (out []apply.Statement, ok bool, err error) {
	if d.joins == nil || d.mode != state.DDLReplicate || !createTags[p.Tag] {
		return nil, false, nil
	}
	var rel uint32
	var identity string
	for _, o := range p.Commands {
		if o.Rel != nil && o.Tag == p.Tag && o.Type == "table" {
			if rel != 0 {
				return nil, false, nil // more than one table: not a CREATE TABLE pglink knows
			}
			rel, identity = *o.Rel, o.Identity
		}
	}
	if rel == 0 {
		return nil, false, nil
	}
	var schema, name string
	var carried bool
	var root *uint32
	err = d.joins.sourceQuery(ctx, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, newTableSQL, rel).Scan(&schema, &name, &carried, &root)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, false, nil // dropped since: its drop is left out too
	case err != nil:
		return nil, false, err
	case !carried:
		return nil, false, nil
	case root != nil && !d.rels[*root]:
		return nil, false, nil // a partition of a table the link does not carry
	case root == nil && !d.joins.filter.Match(schema, name):
		return nil, false, nil
	}
	key := schema + "." + name
	stmt, ierr := isolate(p)
	if ierr != nil {
		return nil, false, nil
	}
	if p.Tag == "CREATE TABLE AS" {
		stmt = withNoData(stmt)
	}
	held, err := d.held(ctx, c.MessageLSN)
	if err != nil {
		return nil, false, err
	}
	if held == state.ResumeSkip {
		out = d.record(c, p, state.EventDDLSkipped, p.Query)
		return append(out, apply.Statement{SQL: state.ClearHeldSQL, Args: []string{d.link}, What: "forget the held schema change"}), true, nil
	}
	out = d.statements(c, p, stmt)
	out = append(out,
		apply.Statement{SQL: state.JoinRelSQL, Args: []string{identity}, What: "name the new table " + key},
		apply.Statement{SQL: state.JoinTableSQL(d.link, root == nil), What: "guard the new table " + key + " and record it joining the link"})
	if held == state.ResumeApply {
		out = append(out, apply.Statement{SQL: state.ClearHeldSQL, Args: []string{d.link}, What: "forget the held schema change"})
	}
	d.last = state.HeldDDL{LSN: c.MessageLSN, Statement: stmt}
	d.rels[rel] = true
	if root != nil {
		d.roots[rel] = d.roots[*root]
		d.log.Info("a partition created on the source is carried; its rows come through its root", "table", key, "root", d.roots[rel])
		return out, true, nil
	}
	d.roots[rel] = key
	d.joins.add(key, rel, c.CommitLSN)
	d.log.Info("a table created on the source joins the link", "table", key, "at", c.MessageLSN.String())
	return out, true, nil
}

// withDataRE finds the WITH [NO] DATA that ends a CREATE TABLE AS.
var withDataRE = regexp.MustCompile(`(?is)\bWITH\s+(NO\s+)?DATA[\s;]*$`)

// withNoData makes a CREATE TABLE AS create its table empty on the
// target: its rows come from the source's copy, not from the target's
// own data.
func withNoData(stmt string) string {
	s := strings.TrimRight(stmt, " \t\r\n;")
	if m := withDataRE.FindStringIndex(s); m != nil {
		return s[:m[0]] + "WITH NO DATA"
	}
	return s + "\nWITH NO DATA"
}

// sourceQuery runs fn on the carrier's own source session, opened at
// first use; a session that failed is opened again next time.
func (j *joins) sourceQuery(ctx context.Context, fn func(ctx context.Context, conn *pgx.Conn) error) error {
	if j.conn == nil || j.conn.IsClosed() {
		conn, err := j.src.Connect(ctx)
		if err != nil {
			return err
		}
		j.conn = conn
	}
	err := state.ControlQuery(ctx, endpoint.Source, "the look-up of a table created on the source", func(ctx context.Context) error {
		return fn(ctx, j.conn)
	})
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("source: look up a new table: %w", err)
	}
	return err
}

func (j *joins) close(ctx context.Context) {
	if j != nil && j.conn != nil {
		j.conn.Close(context.WithoutCancel(ctx))
	}
}

// describeJoining names the joining tables for a log line.
func describeJoining(ts []state.Table) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = quote.Ident(t.Schema) + "." + quote.Ident(t.Name)
	}
	return strings.Join(names, ", ")
}
