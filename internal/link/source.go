package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/wait"
)

// Problem is a reason the link cannot start, with its fix. Several
// problems are reported together so the user fixes them in one round.
type Problem struct {
	Side   endpoint.Side
	What   string
	Remedy string
}

// ProblemsError lists what blocks a link.
type ProblemsError struct{ Problems []Problem }

func (e *ProblemsError) Error() string {
	var b strings.Builder
	b.WriteString("the link cannot start:")
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n- %s: %s", p.Side, p.What)
		if p.Remedy != "" {
			fmt.Fprintf(&b, "\n  Fix: %s", p.Remedy)
		}
	}
	b.WriteString("\npglink assess shows these with every warning, and pglink prepare applies the safe fixes")
	return b.String()
}

// checkSource finds what on the source blocks logical replication of
// tables: the blockers of assess.CheckSource, the checks pglink assess runs.
func checkSource(ctx context.Context, conn *pgx.Conn, tables []catalog.Table, log *slog.Logger) ([]Problem, error) {
	fs, err := assess.CheckSource(ctx, conn, tables)
	if err != nil {
		return nil, err
	}
	logWarnings(log, fs)
	return problems(fs), nil
}

// logWarnings logs the findings of severity Warning: they do not stop a
// link, but the user should read them before relying on it.
func logWarnings(log *slog.Logger, fs []assess.Finding) {
	for _, f := range fs {
		if f.Severity == assess.Warning {
			log.Warn(f.What, "side", string(f.Side), "check", f.Check, "remedy", f.Remedy)
		}
	}
}

// problems keeps the blockers of findings.
func problems(fs []assess.Finding) []Problem {
	var probs []Problem
	for _, f := range assess.Blockers(fs) {
		probs = append(probs, Problem{Side: f.Side, What: f.What, Remedy: f.Remedy})
	}
	return probs
}

// PublicationComment marks a publication as made by pglink for one link.
func PublicationComment(link string) string { return "pglink link " + link }

// PublicationOwner tells whether the publication exists and whether it is
// this link's.
func PublicationOwner(ctx context.Context, conn *pgx.Conn, pub, link string) (exists, ours bool, err error) {
	var comment *string
	err = conn.QueryRow(ctx, `SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1`,
		pub).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("source: look for publication %s: %w", pub, err)
	}
	return true, comment != nil && *comment == PublicationComment(link), nil
}

func CreatePublication(ctx context.Context, conn *pgx.Conn, pub, link string, tables []catalog.Table) error {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.QualifiedName()
	}
	// publish_via_partition_root: changes of partitions arrive as their
	// root, so the target may partition differently (PostgreSQL 13+).
	sql := fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE %s WITH (publish_via_partition_root = true);
		COMMENT ON PUBLICATION %[1]s IS '%[3]s'`,
		pgx.Identifier{pub}.Sanitize(), strings.Join(names, ", "), PublicationComment(link))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("source: create publication %s: %w (the user must own the tables, or be superuser)", pub, err)
	}
	return nil
}

func DropPublication(ctx context.Context, conn *pgx.Conn, pub string) error {
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{pub}.Sanitize()); err != nil {
		return fmt.Errorf("source: drop publication %s: %w", pub, err)
	}
	return nil
}

// SlotState describes a replication slot on the source.
type SlotState struct {
	Exists, Active bool
	Database       string
	Plugin         string
}

func LookupSlot(ctx context.Context, conn *pgx.Conn, slot string) (SlotState, error) {
	var s SlotState
	var db, plugin *string
	err := conn.QueryRow(ctx, `SELECT active, database, plugin FROM pg_replication_slots WHERE slot_name = $1`,
		slot).Scan(&s.Active, &db, &plugin)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("source: look for replication slot %s: %w", slot, err)
	}
	s.Exists = true
	if db != nil {
		s.Database = *db
	}
	if plugin != nil {
		s.Plugin = *plugin
	}
	return s, nil
}

// DropSlot drops a slot when it exists, ending the session that holds it
// first, and reports whether there was one.
func DropSlot(ctx context.Context, conn *pgx.Conn, slot string) (dropped bool, err error) {
	_, err = conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
		WHERE slot_name = $1 AND active_pid IS NOT NULL`, slot)
	if err != nil {
		return false, fmt.Errorf("source: end the session of slot %s: %w", slot, err)
	}
	for attempt := 0; ; attempt++ {
		tag, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if err == nil {
			return tag.RowsAffected() > 0, nil
		}
		if attempt >= 20 || !strings.Contains(err.Error(), "is active") {
			return false, fmt.Errorf("source: drop replication slot %s: %w", slot, err)
		}
		if err := wait.Sleep(ctx, backoffStep); err != nil {
			return false, err
		}
	}
}

// SourceIdentity reads the identity of both sides' databases and
// refuses a target that is the source itself.
func SourceIdentity(ctx context.Context, srcConn, tgtConn *pgx.Conn, src, tgt *endpoint.Endpoint) (catalog.Identity, error) {
	srcID, err := catalog.DatabaseIdentity(ctx, srcConn)
	if err != nil {
		return srcID, fmt.Errorf("source: %w", err)
	}
	tgtID, err := catalog.DatabaseIdentity(ctx, tgtConn)
	if err != nil {
		return srcID, fmt.Errorf("target: %w", err)
	}
	return srcID, assess.SameDatabase(srcID, tgtID, src.Describe(), tgt.Describe())
}
