package link

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/pglink/pglink/internal/apply"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/quote"
	"github.com/pglink/pglink/internal/state"
)

// truncatePayload is what the source's truncate trigger sends
// (state.truncateFunctionSQL): the partition truncated, by oid and name.
type truncatePayload struct {
	Link   string  `json:"link"`
	Rel    uint32  `json:"rel"`
	Schema string  `json:"schema"`
	Name   string  `json:"name"`
	At     string  `json:"at"`
	XID    *uint32 `json:"xid"` // the source transaction that wrote it
}

// truncate carries a TRUNCATE of one partition of the source: the target
// truncates the same partition at this place of the source transaction,
// after the rows before it and before those after it. Every link's
// trigger writes into the same WAL: a message of another link is not
// this one's business.
func (d *ddlCarrier) truncate(ctx context.Context, c *change.Change) ([]apply.Statement, error) {
	_, body, _ := bytes.Cut(c.Content, []byte("\n"))
	var p truncatePayload
	if json.Unmarshal(body, &p) != nil || p.Link != d.link {
		return nil, nil
	}
	d.last = state.HeldDDL{}
	if mac, _, _ := bytes.Cut(c.Content, []byte("\n")); d.key == "" || string(mac) != ddlMAC(d.key, body) {
		d.log.Warn("source: a partition's TRUNCATE message not signed by this link's capture was left out", "at", c.MessageLSN.String())
		return nil, nil
	}
	name := quote.Ident(p.Schema) + "." + quote.Ident(p.Name)
	if why := d.replayed(c, p.XID); why != "" {
		d.log.Warn("source: a partition's TRUNCATE message was refused and left out", "table", name, "reason", why, "at", c.MessageLSN.String())
		return []apply.Statement{{SQL: state.DDLHistorySQL, Args: []string{d.link, string(state.EventDDLIgnored),
			"TRUNCATE " + name + " -- refused: " + why, c.MessageLSN.String(), p.At}, What: "record the refused TRUNCATE in pglink.history"}}, nil
	}
	root, ok := d.roots[p.Rel]
	if !ok {
		d.log.Warn("source: a TRUNCATE of a table that is no partition of a linked table was left out", "table", name, "at", c.MessageLSN.String())
		return nil, nil
	}
	if at, ok := d.syncAt[root]; ok && c.CommitLSN < at {
		return nil, nil // the copy of its table already holds it
	}
	held, err := d.held(ctx, c.MessageLSN)
	if err != nil {
		return nil, err
	}
	what := "TRUNCATE " + name + " (a partition of " + root + " truncated on the source)"
	if held == state.ResumeSkip {
		return []apply.Statement{
			{SQL: state.DDLHistorySQL, Args: []string{d.link, string(state.EventDDLSkipped), what, c.MessageLSN.String(), p.At},
				What: "record the skipped TRUNCATE in pglink.history"},
			{SQL: state.ClearHeldSQL, Args: []string{d.link}, What: "forget the held TRUNCATE"},
		}, nil
	}
	d.last = state.HeldDDL{LSN: c.MessageLSN, Statement: what}
	out := []apply.Statement{
		{SQL: `SELECT pg_catalog.set_config('pglink.truncate_schema', $1, true), pg_catalog.set_config('pglink.truncate_name', $2, true)`,
			Args: []string{p.Schema, p.Name}, What: "name the truncated partition"},
		{SQL: truncateGuardedSQL(d.link), What: "apply " + what},
	}
	if held == state.ResumeApply {
		out = append(out, apply.Statement{SQL: state.ClearHeldSQL, Args: []string{d.link}, What: "forget the held TRUNCATE"})
	}
	return out, nil
}

// truncateGuardedSQL truncates the relation the source named (its schema
// and name in the settings pglink.truncate_schema and
// pglink.truncate_name, never in the statement's text) on the target,
// only when it is a relation of the link there (guarded, or a partition of
// a guarded table: one made since the link guarded its tables); and so is
// every table it reaches through foreign keys, which the source's TRUNCATE
// truncated too (it fails otherwise), so CASCADE takes them with it as it
// did there. Anything else is refused: the name is the source's word only.
func truncateGuardedSQL(link string) string {
	lit := quote.Literal(link)
	return `DO $t$ DECLARE
	nsp text := pg_catalog.current_setting('pglink.truncate_schema');
	name text := pg_catalog.current_setting('pglink.truncate_name');
	rel regclass; other regclass;
BEGIN
	SELECT c.oid INTO rel FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = nsp AND c.relname = name AND c.relkind IN ('r', 'p');
	IF rel IS NOT NULL THEN
		WITH RECURSIVE reach(r) AS (
			SELECT rel::oid UNION SELECT t.relid FROM pg_catalog.pg_partition_tree(rel) t
			UNION SELECT x.r FROM reach JOIN pg_catalog.pg_constraint c ON c.confrelid = reach.r AND c.contype = 'f'
				CROSS JOIN LATERAL (SELECT c.conrelid UNION SELECT relid FROM pg_catalog.pg_partition_tree(c.conrelid)) x(r)
		)
		SELECT r INTO other FROM reach WHERE NOT EXISTS (SELECT 1 FROM pglink.guards g WHERE g.link = ` + lit + `
			AND (g.rel = reach.r OR g.rel IN (SELECT a.relid FROM pg_catalog.pg_partition_ancestors(reach.r) a))) LIMIT 1;
	END IF;
	IF rel IS NULL OR other IS NOT NULL THEN
		RAISE EXCEPTION 'the source truncated %.%, but the target has no such table of link %', pg_catalog.quote_ident(nsp), pg_catalog.quote_ident(name), ` + lit + `
			USING ERRCODE = '42P01', DETAIL = coalesce(pg_catalog.format('%s is not a table of the link', other), ''),
			HINT = 'give the target the same partition as the source and run pglink resume-ddl --apply, or empty it by hand and run pglink resume-ddl --skip';
	END IF;
	EXECUTE pg_catalog.format('TRUNCATE %s CASCADE', rel);
END $t$`
}
