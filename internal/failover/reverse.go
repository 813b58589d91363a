package failover

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/state"
)

// A planned failover with --reverse makes a reverse link, from the target
// (the new primary) back to the source, so that going back loses nothing:
//   - before the target opens, while only pglink writes there and the
//     link holds at the end mark, it creates the reverse link's
//     publication and slot on the target: every write the target takes
//     from then on comes after the slot's consistent point, and nothing
//     the link applied before does;
//   - once the target is open, it records the reverse link in the source's
//     pglink schema (phase replicating, no seeding: the two sides are the
//     same at the cut), guards the linked tables there as any link's
//     target, and lifts the fence from them; the fence stays on the rest;
//   - the reverse link is then an ordinary link: pglink start runs it, and
//     its planned failover fails back (with --reverse again, the roles
//     swap once more).

const reverseScript = `die "a failover with --reverse cannot run as a script"
`

func reverseSlotStep(o Options) Step {
	rev := state.ReverseName(o.Name)
	return Step{ID: "reverse", Title: "Create the reverse link's slot", Side: "target",
		What: fmt.Sprintf("Creates publication and replication slot %s on the target, before it takes its first write: the reverse link %s sends the old source every change the target takes from here on.", state.NamesFor(rev).Slot, rev),
		run:  createReverseSlot, undo: dropReverseSlot, Script: reverseScript}
}

func handOverStep(o Options) Step {
	rev := state.ReverseName(o.Name)
	return Step{ID: "handover", Title: "Hand the source to the reverse link", Side: "source",
		What: fmt.Sprintf("Records the reverse link %s in the source's schema pglink, makes the linked tables there read-only for everyone but the link (its guard), and lifts the fence from them; the source stays read-only.", rev),
		run:  handOver, Script: reverseScript, finish: true}
}

// checkReverse refuses, before anything changes, a reverse link that
// could not be made: the target must decode its WAL and have a slot and a
// WAL sender free, and the names must be free.
func (x *execution) checkReverse(ctx context.Context, src *pgx.Conn) error {
	rev := state.ReverseName(x.ctl.Name)
	names := state.NamesFor(rev)
	var walLevel string
	var freeSlots, freeSenders int
	var replication bool
	err := x.ctl.Conn().QueryRow(ctx, `SELECT current_setting('wal_level'),
		current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots),
		current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication),
		(SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)`).Scan(&walLevel, &freeSlots, &freeSenders, &replication)
	if err != nil {
		return fmt.Errorf("target: check it can be a reverse link's source: %w", err)
	}
	switch {
	case walLevel != "logical":
		return fmt.Errorf("target: wal_level is %s, and the reverse link needs logical: ALTER SYSTEM SET wal_level = logical on the target and restart it, or fail over without --reverse; nothing was changed", walLevel)
	case freeSlots < 1:
		return errors.New("target: every replication slot is taken (max_replication_slots); raise it and restart the target, or fail over without --reverse; nothing was changed")
	case freeSenders < 1:
		return errors.New("target: every WAL sender is taken (max_wal_senders); raise it and restart the target, or fail over without --reverse; nothing was changed")
	case !replication:
		return errors.New("target: the role has neither REPLICATION nor superuser, and the reverse link streams from the target: ALTER ROLE ... REPLICATION, or fail over without --reverse; nothing was changed")
	}
	slot, err := state.LookupSlot(ctx, x.ctl.Conn(), names.Slot)
	if err != nil {
		return err
	}
	// A publication of that link's is a leftover of the link a failback
	// reverses, which its failover left (without --cleanup): it is made
	// again.
	pub, ours, err := state.PublicationOwner(ctx, x.ctl.Conn(), names.Publication, rev)
	if err != nil {
		return err
	}
	if slot.Exists || pub && !ours {
		return fmt.Errorf("target: a replication slot or publication named %s exists already; if it is a leftover, remove it (pglink drop --name %s with the target as its source), or fail over without --reverse; nothing was changed", names.Slot, rev)
	}
	if ok, err := state.Exists(ctx, src); err != nil || !ok {
		return err
	}
	var other string
	err = src.QueryRow(ctx, `SELECT phase FROM pglink.links WHERE name = $1 AND phase <> 'failed_over'`, rev).Scan(&other)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("source: look for a link named %s: %w", rev, err)
	}
	return fmt.Errorf("source: a link named %s into the source exists already (phase %s); drop it first, or fail over without --reverse; nothing was changed", rev, other)
}

// reverseConn opens a session on the target for the reverse slot: the
// slot's creation waits for the transactions in flight, which must not
// hold up the failover's control session.
func (x *execution) reverseConn(ctx context.Context) (*pgx.Conn, error) {
	return state.TargetEndpoint(x.ctl.Tgt).Connect(ctx)
}

func createReverseSlot(ctx context.Context, x *execution) (string, error) {
	if err := x.ctl.SetFailoverStep(ctx, state.FailoverStepReverse); err != nil {
		return "", err
	}
	tables, err := x.ctl.Tables(ctx)
	if err != nil {
		return "", err
	}
	conn, err := x.reverseConn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rev := state.ReverseName(x.ctl.Name)
	if err := x.reverseCapture(ctx, conn); err != nil {
		return "", err
	}
	at, err := state.CreateReverseSlot(ctx, conn, rev, tables)
	if err != nil {
		return "", err
	}
	// The partitions' truncate triggers need the publication's tables.
	why, err := state.InstallTruncateCapture(ctx, conn, rev, state.NamesFor(rev).Publication, x.reverseDDL.Key, func(msg string) { x.log.Info(msg) })
	if err != nil {
		return "", fmt.Errorf("reverse link: %w", err)
	}
	if why != "" {
		x.log.Warn("target: a TRUNCATE of a single partition is not carried back by the reverse link", "reason", why)
	}
	if err := x.ctl.History(ctx, state.EventReverseSlot, fmt.Sprintf("slot %s of reverse link %s at %s", state.NamesFor(rev).Slot, rev, at)); err != nil {
		return "", err
	}
	return fmt.Sprintf("slot %s at %s", state.NamesFor(rev).Slot, at), nil
}

func dropReverseSlot(ctx context.Context, x *execution) error {
	conn, err := x.reverseConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rev := state.ReverseName(x.ctl.Name)
	if err := state.DropReverseSlot(ctx, conn, rev); err != nil {
		return err
	}
	return state.RemoveCapture(ctx, conn, rev)
}

// reverseCapture installs the reverse link's DDL capture on the target
// before it opens, in the forward link's DDL mode, so that a schema change
// the new primary takes before the reverse link first runs is carried
// too (the partitions' truncate triggers follow the slot, see
// createReverseSlot).
func (x *execution) reverseCapture(ctx context.Context, conn *pgx.Conn) error {
	s, err := state.LoadDDL(ctx, x.ctl.Conn(), x.ctl.Name)
	if err != nil {
		return err
	}
	s.Note = ""
	if s.Key, err = state.NewDDLKey(); err != nil {
		return err
	}
	if s.Mode != state.DDLIgnore {
		why, err := state.InstallCapture(ctx, conn, state.ReverseName(x.ctl.Name), s.Key)
		if err != nil {
			return fmt.Errorf("reverse link: %w", err)
		}
		if why != "" {
			s.Note = fmt.Sprintf("--ddl %s asked, but %s", s.Mode, why)
			s.Mode = state.DDLIgnore
		}
	}
	x.reverseDDL = &s
	return nil
}

func handOver(ctx context.Context, x *execution) (string, error) {
	rev := state.ReverseName(x.ctl.Name)
	row, err := state.Load(ctx, x.ctl.Conn(), x.ctl.Name)
	if err != nil {
		return "", err
	}
	tables, err := x.ctl.Tables(ctx)
	if err != nil {
		return "", err
	}
	slot, err := state.ReverseSlotPosition(ctx, x.ctl.Conn(), rev)
	if err != nil {
		return "", err
	}
	tgtID, err := catalog.DatabaseIdentity(ctx, x.ctl.Conn())
	if err != nil {
		return "", fmt.Errorf("target: %w", err)
	}
	conn, err := state.TargetEndpoint(x.ctl.Src).Connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ddl, err := state.RecordReverse(ctx, conn, state.ReverseLink{
		Name: rev, Of: x.ctl.Name, SourceDesc: x.ctl.Tgt.Describe(), SourceSystem: tgtID.Key(),
		SourceDB: row.TargetDB, TargetDB: row.SourceDB, Include: row.Include, Exclude: row.Exclude,
		Tables: tables, From: slot, SchemaMode: "existing",
	})
	if err != nil {
		return "", err
	}
	// A failover that finishes an interrupted one does not know the key:
	// the reverse link's first start installs its capture again.
	if d := x.reverseDDL; d != nil {
		if err := state.SetDDL(ctx, conn, rev, d.Mode, d.Key, d.Note); err != nil {
			return "", err
		}
	}
	fenced := true
	x.res.SourceFenced = &fenced
	detail := fmt.Sprintf("reverse link %s recorded from %s; the source's linked tables take only its writes", rev, slot)
	if !ddl {
		detail += " (schema changes there are not refused: only a superuser can add that guard)"
	}
	return detail, nil
}

// liftOldFence removes, when the link is a reverse link, what is left of
// the fence on its target: the old source, which the first failover
// fenced, takes every write again once it is the primary.
func liftOldFence(ctx context.Context, x *execution) error {
	row, err := state.Load(ctx, x.ctl.Conn(), x.ctl.Name)
	if err != nil || row.ReverseOf == nil {
		return err
	}
	if err := Unfence(ctx, x.ctl.Conn()); err != nil {
		return fmt.Errorf("target: lift what is left of the fence of link %s's failover: %w", *row.ReverseOf, err)
	}
	return nil
}

// sameReverse refuses to finish an interrupted failover with another
// choice of --reverse than it was made with: its reverse slot on the
// target says which.
func (x *execution) sameReverse(ctx context.Context) error {
	rev := state.ReverseName(x.ctl.Name)
	slot, err := state.LookupSlot(ctx, x.ctl.Conn(), state.NamesFor(rev).Slot)
	if err != nil {
		return err
	}
	switch {
	case slot.Exists && !x.opts.Reverse:
		return fmt.Errorf("the interrupted failover of link %s was making the reverse link %s (its slot is on the target): run pglink failover --planned --reverse to finish it", x.ctl.Name, rev)
	case !slot.Exists && x.opts.Reverse:
		return fmt.Errorf("the interrupted failover of link %s made no reverse link, and the target has taken writes since, so one cannot start at the cut any more: finish it without --reverse", x.ctl.Name)
	}
	return nil
}
