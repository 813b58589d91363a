package link

import (
	"context"
	"fmt"
)

// A DROP INDEX is seen at sql_drop, after its index is gone from the
// source's catalog, so the capture cannot tell which table it was on:
// it looks like a change of no table, which the link carries. The target
// tells instead: the index is the link's when it is there on a table the
// link guards.

// linkedIndexesSQL counts the indexes named in $1 (identities, as
// pg_event_trigger_dropped_objects gives them) that are on a relation
// link $2 guards.
const linkedIndexesSQL = `SELECT count(*) FROM pg_catalog.unnest($1::text[]) AS n(name)
	JOIN pg_catalog.pg_index i ON i.indexrelid = pg_catalog.to_regclass(n.name)
	WHERE i.indrelid IN (SELECT g.rel FROM pglink.guards g WHERE g.link = $2)`

// dropsOtherIndex tells whether p drops only indexes, none of them on a
// table of the link on the target (so, an index of a table outside the
// link, which is left out).
func (d *ddlCarrier) dropsOtherIndex(ctx context.Context, p ddlPayload) (bool, error) {
	if len(p.Commands) > 0 || len(p.Dropped) == 0 {
		return false, nil
	}
	names := make([]string, 0, len(p.Dropped))
	for _, o := range p.Dropped {
		if o.Type != "index" {
			return false, nil
		}
		names = append(names, o.Identity)
	}
	if err := d.connect(ctx); err != nil {
		return false, err
	}
	var n int
	if err := d.conn.QueryRow(ctx, linkedIndexesSQL, names, d.link).Scan(&n); err != nil {
		return false, fmt.Errorf("target: look for the indexes the source dropped: %w", err)
	}
	return n == 0, nil
}
