package state

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/quote"
)

// matViewsSQL lists the materialized views in the schemas of link $1's
// tables, and those they read in other schemas, each after every
// materialized view it reads, directly or through views: a view's depth is
// its longest chain of rewrite-rule dependencies, which is longer than
// that of anything it reads. The schema copy creates them WITH NO DATA
// (pg_dump's schema holds no contents), so they cannot be read until
// refreshed.
const matViewsSQL = `WITH RECURSIVE reads(rel) AS (
	SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind = 'm' AND n.nspname IN (SELECT table_schema FROM pglink.tables WHERE link = $1)
	UNION
	SELECT d.refobjid FROM reads
	JOIN pg_rewrite r ON r.ev_class = reads.rel
	JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
	                 AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> reads.rel),
dep(mv, rel, depth) AS (
	SELECT c.oid, c.oid, 0 FROM reads JOIN pg_class c ON c.oid = reads.rel AND c.relkind = 'm'
	UNION
	SELECT dep.mv, d.refobjid, dep.depth + 1 FROM dep
	JOIN pg_rewrite r ON r.ev_class = dep.rel
	JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
	                 AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> dep.rel
	WHERE dep.depth < 100)
SELECT format('%I.%I', n.nspname, c.relname) FROM dep
JOIN pg_class c ON c.oid = dep.mv JOIN pg_namespace n ON n.oid = c.relnamespace
GROUP BY n.nspname, c.relname ORDER BY max(dep.depth), 1`

// MatViews lists the materialized views of link name's schemas on the
// target, in the order they can be refreshed.
func MatViews(ctx context.Context, conn *pgx.Conn, name string) ([]string, error) {
	rows, err := conn.Query(ctx, matViewsSQL, name)
	if err != nil {
		return nil, fmt.Errorf("target: list materialized views: %w", err)
	}
	views, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("target: list materialized views: %w", err)
	}
	return views, nil
}

// RefreshMatViews refreshes the materialized views of link name's schemas
// on the target, in dependency order, on conn (a session of pglink's,
// which may write while the target database is read-only). It stops at
// the first that fails, and returns those refreshed before.
func RefreshMatViews(ctx context.Context, conn *pgx.Conn, name string) ([]string, error) {
	views, err := MatViews(ctx, conn, name)
	if err != nil {
		return nil, err
	}
	for i, v := range views {
		if _, err := conn.Exec(ctx, "REFRESH MATERIALIZED VIEW "+v); err != nil {
			return views[:i], fmt.Errorf("target: refresh materialized view %s: %w", v, err)
		}
	}
	return views, nil
}

// RefreshMatViewsSQL is RefreshMatViews as one statement, for a script.
func RefreshMatViewsSQL(name string) string {
	return `DO $r$ DECLARE v text; BEGIN
	FOR v IN ` + strings.ReplaceAll(matViewsSQL, "$1", quote.Literal(name)) + ` LOOP
		EXECUTE 'REFRESH MATERIALIZED VIEW ' || v;
	END LOOP; END $r$`
}
