package state

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/change"
)

// reverseSuffix names a reverse link after the link it reverses; the
// reverse of a reverse link takes the first link's name back.
const reverseSuffix = "_back"

// ReverseName is the name of the link that reverses link name.
func ReverseName(name string) string {
	if base, ok := strings.CutSuffix(name, reverseSuffix); ok && base != "" {
		return base
	}
	return name + reverseSuffix
}

// ReverseLink is the reverse link a planned failover with --reverse makes:
// from the new primary (the old target) back to the old source, starting
// at the slot it created on the new primary before that took its first
// write. No seeding: both sides are the same at the cut.
type ReverseLink struct {
	Name, Of                 string // the reverse link, and the link it reverses
	SourceDesc, SourceSystem string // the new primary, as the link records a source
	SourceDB, TargetDB       string
	Include, Exclude         []string
	Tables                   []catalog.Table
	From                     change.LSN // the reverse slot's consistent point
	SchemaMode               string
}

// CreateReverseSlot creates the reverse link's publication and slot on
// conn (the new primary), unless they exist already, and returns the
// slot's consistent point: every change committed after it is sent.
func CreateReverseSlot(ctx context.Context, conn *pgx.Conn, name string, tables []catalog.Table) (change.LSN, error) {
	names := NamesFor(name)
	exists, ours, err := PublicationOwner(ctx, conn, names.Publication, name)
	if err != nil {
		return 0, err
	}
	if exists && !ours {
		return 0, fmt.Errorf("target: a publication named %s exists and is not the reverse link %s's; drop it, or fail over without --reverse", names.Publication, name)
	}
	at, err := ReverseSlotPosition(ctx, conn, name)
	if err == nil || !errors.Is(err, errNoReverseSlot) {
		return at, err
	}
	// No slot yet: a publication of the link's is a leftover (see
	// checkReverse), made again for the tables linked now.
	if exists {
		if err := DropPublication(ctx, conn, names.Publication); err != nil {
			return 0, fmt.Errorf("reverse link %s: %w", name, err)
		}
	}
	if err := CreatePublication(ctx, conn, names.Publication, name, tables); err != nil {
		return 0, fmt.Errorf("reverse link %s: %w", name, err)
	}
	var lsn string
	err = conn.QueryRow(ctx, `SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')`, names.Slot).Scan(&lsn)
	if err != nil {
		return 0, fmt.Errorf("reverse link %s: source: create replication slot %s: %w", name, names.Slot, err)
	}
	return ParseLSN(&lsn), nil
}

var errNoReverseSlot = errors.New("no reverse slot")

// ReverseSlotPosition is where the reverse link's slot on conn starts.
func ReverseSlotPosition(ctx context.Context, conn *pgx.Conn, name string) (change.LSN, error) {
	slot := NamesFor(name).Slot
	var lsn *string
	err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&lsn)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && lsn == nil {
		return 0, fmt.Errorf("target: the reverse link's replication slot %s is missing: %w", slot, errNoReverseSlot)
	}
	if err != nil {
		return 0, fmt.Errorf("target: read the reverse link's replication slot %s: %w", slot, err)
	}
	return ParseLSN(lsn), nil
}

// DropReverseSlot removes what CreateReverseSlot made.
func DropReverseSlot(ctx context.Context, conn *pgx.Conn, name string) error {
	names := NamesFor(name)
	if _, err := DropSlot(ctx, conn, names.Slot); err != nil {
		return fmt.Errorf("reverse link %s: %w", name, err)
	}
	return DropPublicationIfOurs(ctx, conn, names.Publication, name)
}

// RecordReverse records the reverse link in the old source's pglink
// schema, guards its tables there for the link, and then lifts the fence
// from them: the guard lets the link's sessions write, the fence would
// not. The fence stays on every other table, and the tables carry the
// guard or the fence or both at every moment. A reverse link of that name
// that a failover of it has ended is replaced; one from the same source
// is kept (a failover that finishes an interrupted one records it again).
func RecordReverse(ctx context.Context, conn *pgx.Conn, r ReverseLink) (ddlGuard bool, err error) {
	if err := Ensure(ctx, conn); err != nil {
		return false, err
	}
	if err := insertReverse(ctx, conn, r); err != nil {
		return false, err
	}
	names := NamesFor(r.Name)
	if ddlGuard, err = GuardTables(ctx, conn, names, r.Tables); err != nil {
		return false, fmt.Errorf("reverse link %s: %w", r.Name, err)
	}
	rows, err := conn.Query(ctx, `SELECT g.rel::regclass::text FROM pglink.guards g
		JOIN pg_trigger t ON t.tgrelid = g.rel AND t.tgname = 'pglink_fence' WHERE g.link = $1`, r.Name)
	if err != nil {
		return false, fmt.Errorf("source: list the reverse link's fenced tables: %w", err)
	}
	fenced, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, fmt.Errorf("source: list the reverse link's fenced tables: %w", err)
	}
	for _, rel := range fenced {
		if _, err := conn.Exec(ctx, "DROP TRIGGER pglink_fence ON "+rel); err != nil {
			return false, fmt.Errorf("source: lift the fence from %s for the reverse link: %w", rel, err)
		}
	}
	return ddlGuard, nil
}

func insertReverse(ctx context.Context, conn *pgx.Conn, r ReverseLink) error {
	fail := func(err error) error { return fmt.Errorf("source: record the reverse link %s: %w", r.Name, err) }
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadWrite})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var phase Phase
	var system string
	err = tx.QueryRow(ctx, `SELECT phase, source_system FROM pglink.links WHERE name = $1`, r.Name).Scan(&phase, &system)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fail(err)
	case phase == PhaseFailedOver:
		if _, err := tx.Exec(ctx, deleteLinkSQL, r.Name); err != nil {
			return fail(err)
		}
	case system == r.SourceSystem:
		return nil
	default:
		return fmt.Errorf("source: a link named %s exists in this database already (phase %s, from another source): drop it first", r.Name, phase)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO pglink.links (name, phase, seed_step, source_desc, source_system,
		source_db, target_db, tables_include, tables_exclude, schema_mode, reverse_of)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		r.Name, PhaseReplicating, StepDone, r.SourceDesc, r.SourceSystem, r.SourceDB, r.TargetDB,
		append([]string{}, r.Include...), append([]string{}, r.Exclude...), r.SchemaMode, r.Of); err != nil {
		return fail(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO pglink.progress (link) VALUES ($1)`, r.Name); err != nil {
		return fail(err)
	}
	for _, t := range r.Tables {
		if _, err := tx.Exec(ctx, `INSERT INTO pglink.tables (link, table_schema, table_name, state, sync_lsn)
			VALUES ($1, $2, $3, $4, $5::pg_lsn)`, r.Name, t.Schema, t.Name, TableCopied, r.From.String()); err != nil {
			return fail(fmt.Errorf("table %s: %w", t.Key(), err))
		}
	}
	detail := fmt.Sprintf("reverse of link %s, from %s at %s", r.Of, r.SourceDesc, r.From)
	if _, err := tx.Exec(ctx, `INSERT INTO pglink.history (link, event, detail) VALUES ($1, $2, $3)`,
		r.Name, EventReversed, detail); err != nil {
		return fail(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return nil
}
