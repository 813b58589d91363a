package assess

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
)

// ErrSameDatabase says that the source and the target given are one
// database: a link would empty the source's tables to copy them into
// themselves.
var ErrSameDatabase = errors.New("the source and the target are the same database")

// SameDatabase returns an error naming both sides when src and tgt are
// one database, reached by whatever addresses.
func SameDatabase(src, tgt catalog.Identity, srcAddr, tgtAddr string) error {
	if src != tgt {
		return nil
	}
	return &endpoint.Error{Side: endpoint.Target, Err: ErrSameDatabase,
		Cause: fmt.Sprintf("the target is the source database itself: %s and %s reach database %s of the same server (system identifier %d); "+
			"a link copies into another database, and into itself it would destroy the source's data", srcAddr, tgtAddr, src.Name, src.System),
		Remedy: "give a target database on another server, or another database of this one; nothing was changed"}
}

// sameDatabaseFinding is SameDatabase as a blocker of the assessment.
func sameDatabaseFinding(ctx context.Context, srcConn, tgtConn *pgx.Conn, srcAddr, tgtAddr string) ([]Finding, error) {
	src, err := catalog.DatabaseIdentity(ctx, srcConn)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	tgt, err := catalog.DatabaseIdentity(ctx, tgtConn)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	var ee *endpoint.Error
	if errors.As(SameDatabase(src, tgt, srcAddr, tgtAddr), &ee) {
		return []Finding{finding(Blocker, endpoint.Target, "same_database", ee.Cause, ee.Remedy)}, nil
	}
	return nil, nil
}

// LinkRoleFindings finds databases already in a link where this one would
// make a chain: a target that is the source of a link (its slot is there),
// and a source that is a link's target (read-only, guarded) and has not
// failed over yet.
func LinkRoleFindings(ctx context.Context, srcConn, tgtConn *pgx.Conn) ([]Finding, error) {
	var fs []Finding
	linked, err := linkedTargetOf(ctx, srcConn)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if len(linked) > 0 {
		fs = append(fs, finding(Blocker, endpoint.Source, "source_is_link_target",
			fmt.Sprintf("the source database is the target of pglink link %s: it is a read-only copy of another database until that link fails over", strings.Join(linked, ", ")),
			"link from that link's source instead, or run pglink failover for that link first"))
	}
	if tgtConn == nil {
		return fs, nil
	}
	sources, err := linkSourceOf(ctx, tgtConn)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if len(sources) > 0 {
		fs = append(fs, finding(Blocker, endpoint.Target, "target_is_link_source",
			fmt.Sprintf("the target database is the source of pglink link %s (its replication slots are there): a link writes into its tables, and that link would copy those writes on",
				strings.Join(sources, ", ")),
			"give another target database; or end that link first (pglink drop)"))
	}
	return fs, nil
}

// linkedTargetOf lists the links into conn's database that have not
// failed over.
func linkedTargetOf(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('pglink.links') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look for pglink's links: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `SELECT name || ' (' || phase || ')' FROM pglink.links WHERE phase <> 'failed_over' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("read pglink's links: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read pglink's links: %w", err)
	}
	return names, nil
}

// linkSourceOf lists the links whose replication slots are in conn's
// database.
func linkSourceOf(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT DISTINCT substr(regexp_replace(slot_name, '_sync$', ''), 8)
		FROM pg_replication_slots WHERE database = current_database() AND slot_name LIKE 'pglink\_%' AND plugin = 'pgoutput' ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("read the replication slots: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the replication slots: %w", err)
	}
	return names, nil
}
