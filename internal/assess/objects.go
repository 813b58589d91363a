package assess

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/quote"
)

// userObjects restricts a pg_class query (alias c, namespace n) to the
// user's objects, as catalog.Tables does: no system schemas, not pglink's
// own, nothing that belongs to an extension.
const userObjects = `n.nspname !~ '^pg_' AND n.nspname NOT IN ('information_schema', '` + catalog.OwnSchema + `')
	AND NOT EXISTS (SELECT 1 FROM pg_depend d
	                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`

// objectFindings reports what the source holds that logical replication
// does not carry: large objects, the contents of materialized views,
// sequence positions; and event triggers, which the schema copy takes
// along to the target.
func objectFindings(ctx context.Context, conn *pgx.Conn) ([]Finding, error) {
	var fs []Finding
	var largeObjects, sequences int64
	err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_largeobject_metadata),
		(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.relkind = 'S' AND c.relpersistence <> 't' AND `+userObjects+`)`).Scan(&largeObjects, &sequences)
	if err != nil {
		return nil, fmt.Errorf("source: count large objects and sequences: %w", err)
	}
	if largeObjects > 0 {
		fs = append(fs, finding(Warning, endpoint.Source, "large_objects",
			count(largeObjects, "large object")+": logical replication does not carry them, and the schema copy leaves them out, so the target will not have them",
			"store them in bytea columns instead, or copy them at the cutover, while the source takes no writes: pg_dump --data-only --blobs --exclude-schema='*' SOURCE | psql TARGET"))
	}
	if sequences > 0 {
		fs = append(fs, finding(Info, endpoint.Source, "sequences",
			count(sequences, "sequence")+": logical replication does not carry their positions; the target's sequences are set from the source's at failover",
			""))
	}
	mv, err := matViews(ctx, conn)
	if err != nil {
		return nil, err
	}
	if len(mv) > 0 {
		var refresh []string
		for _, v := range mv {
			refresh = append(refresh, "REFRESH MATERIALIZED VIEW "+v+";")
		}
		fs = append(fs, finding(Info, endpoint.Source, "materialized_views",
			"materialized views are created empty on the target (their contents are not replicated); pglink refreshes them once seeding is done, and again in a planned failover before the target opens: "+list(mv),
			"after a forced failover, run the SQL below on the target (views that read others after those)", refresh...))
	}
	evt, err := eventTriggers(ctx, conn)
	if err != nil {
		return nil, err
	}
	if len(evt) > 0 {
		var disable []string
		for _, e := range evt {
			disable = append(disable, "ALTER EVENT TRIGGER "+quote.Ident(e)+" DISABLE;")
		}
		fs = append(fs, finding(Warning, endpoint.Source, "event_triggers",
			"event triggers: "+list(evt)+". Schema changes (DDL) are not replicated, and these triggers are copied with the schema (when the user may read them), so they also fire on the target for DDL run there",
			"check that they do no harm on the target; to switch them off there, run the SQL below on the target", disable...))
	}
	return fs, nil
}

func matViews(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'm' AND `+userObjects+` ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("source: list materialized views: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("source: list materialized views: %w", err)
	}
	return out, nil
}

func eventTriggers(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT evtname FROM pg_event_trigger e
		WHERE evtenabled <> 'D' AND NOT EXISTS (SELECT 1 FROM pg_depend d
		      WHERE d.classid = 'pg_event_trigger'::regclass AND d.objid = e.oid AND d.deptype = 'e')
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("source: list event triggers: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("source: list event triggers: %w", err)
	}
	return out, nil
}
