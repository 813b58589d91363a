package assess

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/pgdump"
)

// LinkVersionFindings reads both servers' versions and checks what depends
// on the two together: the target's version, the order of the two, and a
// pg_dump able to dump the source when the schema is copied. pglink start
// runs it beside CheckSource and CheckTarget; assess runs the same checks.
func LinkVersionFindings(ctx context.Context, src, tgt *pgx.Conn, schemaMode string) ([]Finding, error) {
	var srcNum, tgtNum int
	var tgtVersion string
	if err := src.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&srcNum); err != nil {
		return nil, fmt.Errorf("source: read the server's version: %w", err)
	}
	if err := tgt.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, current_setting('server_version')`).Scan(&tgtNum, &tgtVersion); err != nil {
		return nil, fmt.Errorf("target: read the server's version: %w", err)
	}
	fs := versionPairFindings(srcNum, tgtNum, tgtVersion, schemaMode)
	return append(fs, pgDumpFindings(ctx, srcNum, schemaMode)...), nil
}

// versionPairFindings checks the target's version, and that it is not older
// than the source's when the schema is copied: a schema dumped from a newer
// server may not load into an older one. A schema the user loaded needs
// only the rows to fit.
func versionPairFindings(srcNum, tgtNum int, tgtVersion, schemaMode string) []Finding {
	fs := []Finding{versionFinding(endpoint.Target, tgtNum, tgtVersion)}
	if major(tgtNum) >= major(srcNum) {
		return fs
	}
	if schemaMode == SchemaExisting {
		return append(fs, finding(Warning, endpoint.Target, "version_order",
			fmt.Sprintf("the target runs PostgreSQL %d, older than the source's %d: values of a type or a feature the target lacks make the link fail", major(tgtNum), major(srcNum)),
			"check that the target's schema holds every table and type the source's rows need"))
	}
	return append(fs, finding(Blocker, endpoint.Target, "version_order",
		fmt.Sprintf("the target runs PostgreSQL %d, older than the source's %d: a schema dumped from a newer server may not load into an older one", major(tgtNum), major(srcNum)),
		fmt.Sprintf("use a target of PostgreSQL %d or newer, or load the schema on the target yourself and link with --schema existing", major(srcNum))))
}

// pgDumpFindings checks that a pg_dump can dump the source's schema when
// pglink copies it: pg_dump refuses a server newer than itself, and the
// link would fail only after creating its slot and the target's schema.
func pgDumpFindings(ctx context.Context, srcNum int, schemaMode string) []Finding {
	if schemaMode == SchemaExisting {
		return nil
	}
	path, err := pgdump.Find(ctx, srcNum)
	var nf *pgdump.NotFoundError
	switch {
	case errors.As(err, &nf):
		what := fmt.Sprintf("the source runs PostgreSQL %d, and pglink copies its schema with pg_dump, which must be at least as new: ", nf.Want)
		if len(nf.Seen) == 0 {
			what += "no pg_dump was found"
		} else {
			what += "only " + list(nf.Seen) + " was found"
		}
		return []Finding{finding(Blocker, endpoint.Source, "pg_dump", what,
			fmt.Sprintf("install the PostgreSQL %d client (or newer) where pglink runs (e.g. apt-get install postgresql-client-%d, from apt.postgresql.org) and set PGLINK_PGBIN to its bin directory if it is not found, or load the schema on the target yourself and link with --schema existing", nf.Want, nf.Want))}
	case err != nil:
		return []Finding{finding(Blocker, endpoint.Source, "pg_dump", "pg_dump cannot be run: "+err.Error(),
			"install the PostgreSQL client where pglink runs, or link with --schema existing")}
	}
	return []Finding{finding(Info, endpoint.Source, "pg_dump", "the schema is copied with "+path, "")}
}
