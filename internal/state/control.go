package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/wait"
)

// Control is a link opened by a process that does not run it, to steer it
// through a failover: it reads the link's state, holds the running link at
// a source position, and changes what the link made on either side. Every
// change goes through the link's row in the target, so the process that
// runs the link (or none) and the failover agree on the phase.
type Control struct {
	Name     string
	Src, Tgt *endpoint.Endpoint // the target endpoint has pglink's session settings
	conn     *pgx.Conn          // control session on the target
	names    Names
	failover *Lease // the failover lease, once taken
}

// Info is what a failover needs to know of a link.
type Info struct {
	Phase              Phase
	SeedStep           string
	FailoverKind       string // "" unless a failover ran or runs
	FailoverStep       FailoverStep
	SourceDesc         string
	SourceSystem       string
	AppliedLSN         change.LSN
	AppliedCommitTime  *time.Time
	ServerWALEnd       change.LSN // the source's WAL end, as last reported by the running link
	LagSeconds         *float64   // the running link's last measure
	UpdatedAt          time.Time  // when the running link last reported
	Running            bool       // a process holds the link's lease
	PauseState         string
	FailoverLSN        change.LSN
	Slot, Publication  string
	Origin, Trigger    string
	SyncSlot           string
	TargetDB, SourceDB string
}

// OpenControl connects to the target and loads the link.
func OpenControl(ctx context.Context, name, source, target string) (*Control, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	src, tgt, err := ParseEndpoints(source, target)
	if err != nil {
		return nil, err
	}
	conn, err := tgt.Connect(ctx)
	if err != nil {
		return nil, err
	}
	c := &Control{Name: name, Src: src, Tgt: tgt, conn: conn, names: NamesFor(name)}
	exists, err := Exists(ctx, conn)
	if err == nil && !exists {
		err = fmt.Errorf("target: there is no link %s in database %s (no pglink schema); check --target and --name", name, tgt.Database())
	}
	if err == nil {
		// A target made by an older pglink gets the failover columns.
		err = Ensure(ctx, conn)
	}
	if err != nil {
		c.Close(ctx)
		return nil, err
	}
	if _, err := c.Info(ctx); err != nil {
		c.Close(ctx)
		return nil, err
	}
	return c, nil
}

// Close ends the control session, and gives the failover lease back.
func (c *Control) Close(ctx context.Context) {
	c.failover.Release(ctx)
	c.conn.Close(context.WithoutCancel(ctx))
}

// Trigger is the name of the link's read-only guard trigger on the target.
func (c *Control) Trigger() string { return c.names.Trigger }

// Conn is the control session on the target (pglink's settings: it may write).
func (c *Control) Conn() *pgx.Conn { return c.conn }

// Info reads the link's state now.
func (c *Control) Info(ctx context.Context) (Info, error) {
	row, err := Load(ctx, c.conn, c.Name)
	if errors.Is(err, ErrNoLink) {
		return Info{}, fmt.Errorf("target: there is no link %s in database %s; check --target and --name", c.Name, c.Tgt.Database())
	}
	if err != nil {
		return Info{}, err
	}
	in := Info{Phase: row.Phase, SeedStep: row.SeedStep, SourceDesc: row.SourceDesc, SourceSystem: row.SourceSystem,
		AppliedLSN: row.AppliedLSN, AppliedCommitTime: row.AppliedCommitTime, ServerWALEnd: row.ServerWALEnd,
		LagSeconds: row.LagSeconds, UpdatedAt: row.UpdatedAt, Slot: c.names.Slot, SyncSlot: c.names.SyncSlot,
		Publication: c.names.Publication, Origin: c.names.Origin, Trigger: c.names.Trigger,
		TargetDB: row.TargetDB, SourceDB: row.SourceDB, FailoverKind: Deref(row.FailoverKind),
		FailoverStep: Deref(row.FailoverStep), PauseState: Deref(row.PauseState), FailoverLSN: row.FailoverLSN}
	if in.Running, err = LeaseHeld(ctx, c.conn, c.Name); err != nil {
		return Info{}, err
	}
	return in, nil
}

// BeginFailover moves a replicating (or, forced, a broken) link to the
// phase failing_over, unless another failover has it already.
func (c *Control) BeginFailover(ctx context.Context, kind string, from ...Phase) error {
	phases := make([]string, len(from))
	for i, p := range from {
		phases[i] = string(p)
	}
	tag, err := c.conn.Exec(ctx, `UPDATE pglink.links SET phase = 'failing_over', failover_kind = $2,
		failover_step = 'begin', failover_at = NULL, failover_lsn = NULL, updated_at = now()
		WHERE name = $1 AND phase = ANY($3)`, c.Name, kind, phases)
	if err != nil {
		return fmt.Errorf("target: mark link %s failing over: %w", c.Name, err)
	}
	if tag.RowsAffected() != 1 {
		in, _ := c.Info(ctx)
		return fmt.Errorf("link %s is %s, not %v: it cannot fail over now", c.Name, in.Phase, from)
	}
	return AddHistory(ctx, c.conn, c.Name, EventFailoverStarted, kind)
}

// SetFailoverStep records how far a failover got, so an interrupted one
// can be told from a finished one.
func (c *Control) SetFailoverStep(ctx context.Context, step FailoverStep) error {
	if _, err := c.conn.Exec(ctx, `UPDATE pglink.links SET failover_step = $2, updated_at = now() WHERE name = $1`,
		c.Name, step); err != nil {
		return fmt.Errorf("target: record failover step %s: %w", step, err)
	}
	return nil
}

// AbortFailover returns the link to replicating, releasing its hold.
func (c *Control) AbortFailover(ctx context.Context, reason string) error {
	_, err := c.conn.Exec(ctx, `UPDATE pglink.links SET phase = 'replicating', failover_kind = NULL, failover_step = NULL,
		failover_lsn = NULL, pause_state = NULL, pause_at = NULL, updated_at = now()
		WHERE name = $1 AND phase = 'failing_over'`, c.Name)
	if err != nil {
		return fmt.Errorf("target: return link %s to replicating: %w", c.Name, err)
	}
	return AddHistory(ctx, c.conn, c.Name, EventFailoverUndone, reason)
}

// FinishFailover marks the link failed over: a process still running it
// stops streaming and exits. The step stays "cut" until the failover has
// also dropped what it drops and ended (see FailoverStepDone).
func (c *Control) FinishFailover(ctx context.Context, at change.LSN, detail string) error {
	_, err := c.conn.Exec(ctx, `UPDATE pglink.links SET phase = 'failed_over', failover_step = 'cut',
		failover_at = now(), failover_lsn = nullif($2, '0/0')::pg_lsn, pause_state = NULL, pause_at = NULL,
		updated_at = now() WHERE name = $1`, c.Name, at.String())
	if err != nil {
		return fmt.Errorf("target: mark link %s failed over: %w", c.Name, err)
	}
	return AddHistory(ctx, c.conn, c.Name, EventFailedOver, detail)
}

// RequestHold asks the running link to commit what it applied and to hold
// before its next source transaction, until HoldAt says how far to go. A
// failover asks before it writes its end mark, so the link cannot apply
// the mark before it knows that it must stop there.
func (c *Control) RequestHold(ctx context.Context) error {
	return AskPause(ctx, c.conn, c.Name)
}

// WaitHolding waits until the link holds after RequestHold, or timeout
// passes; nudge (may be nil) is called now and then while it waits, to
// write an empty transaction on the source for the link to stop before.
func (c *Control) WaitHolding(ctx context.Context, timeout time.Duration, nudge func(context.Context) error) error {
	return WaitPauseState(ctx, c.conn, c.Name, "holding", timeout, nudge)
}

// HoldAt tells the link, which holds after RequestHold, to apply every
// source transaction that committed before at, and to hold before the
// first one at or after it.
func (c *Control) HoldAt(ctx context.Context, at change.LSN) error {
	tag, err := c.conn.Exec(ctx, `UPDATE pglink.links SET pause_state = 'at', pause_at = $2::text::pg_lsn,
		failover_lsn = $2::text::pg_lsn WHERE name = $1 AND pause_state = 'holding'`, c.Name, at.String())
	if err != nil {
		return fmt.Errorf("target: ask link %s to stop at %s: %w", c.Name, at, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("link %s does not hold (its pause was ended by something else); try again", c.Name)
	}
	return nil
}

// WaitHeld waits until the link holds at the position HoldAt gave, or
// timeout passes.
func (c *Control) WaitHeld(ctx context.Context, timeout time.Duration) error {
	return WaitPauseState(ctx, c.conn, c.Name, "paused", timeout, nil)
}

// ReleaseHold lets the link go on.
func (c *Control) ReleaseHold(ctx context.Context) error {
	return EndPause(ctx, c.conn, c.Name)
}

// WaitStopped waits until no process runs the link, then takes its lease
// so none can start; release gives it back.
func (c *Control) WaitStopped(ctx context.Context, timeout time.Duration) (release func(), err error) {
	deadline := time.Now().Add(timeout)
	for {
		l, err := AcquireLease(ctx, c.Tgt, c.Name)
		if err == nil {
			return func() { l.Release(ctx) }, nil
		}
		if !errors.Is(err, ErrLeaseHeld) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the process running link %s did not stop within %s; stop it (it is the pglink start of this link) and try again", c.Name, timeout)
		}
		if err := wait.Sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// Tables lists the link's tables as the target knows them.
func (c *Control) Tables(ctx context.Context) ([]catalog.Table, error) {
	rows, err := LoadTables(ctx, c.conn, c.Name)
	if err != nil {
		return nil, err
	}
	return CatalogTables(rows), nil
}

// OpenTarget makes the target writable: it removes the link's read-only
// guard from its tables and the database's read-only default. Tables of
// other links into the same database keep their own guard.
func (c *Control) OpenTarget(ctx context.Context) error {
	return UnguardTables(ctx, c.conn, c.names, false)
}

// CloseTarget puts the read-only guard back (to undo OpenTarget).
func (c *Control) CloseTarget(ctx context.Context) error {
	tables, err := c.Tables(ctx)
	if err != nil {
		return err
	}
	_, err = GuardTables(ctx, c.conn, c.names, tables)
	return err
}

// DropSlots removes the link's replication slots on the source, ending
// the session that streams from them first.
func (c *Control) DropSlots(ctx context.Context, src *pgx.Conn) error {
	_, err := DropSourceSlots(ctx, src, c.Name)
	return err
}

// SlotExists reports whether the link's slot is on the source.
func (c *Control) SlotExists(ctx context.Context, src *pgx.Conn) (bool, error) {
	s, err := LookupSlot(ctx, src, c.names.Slot)
	return s.Exists, err
}

// DropPublication removes the link's publication on the source.
func (c *Control) DropPublication(ctx context.Context, src *pgx.Conn) error {
	return DropPublicationIfOurs(ctx, src, c.names.Publication, c.Name)
}

// RemoveState removes the link's origin and state from the target (the
// pglink schema too when no other link is in it). The data stays.
func (c *Control) RemoveState(ctx context.Context) error {
	return DropTargetSide(ctx, c.Tgt, c.Name, slog.New(slog.DiscardHandler))
}

// History records an event of the link.
func (c *Control) History(ctx context.Context, event Event, detail string) error {
	return AddHistory(ctx, c.conn, c.Name, event, detail)
}

// CheckSource checks that conn is the link's source database.
func (c *Control) CheckSource(ctx context.Context, src *pgx.Conn) error {
	id, err := SourceIdentity(ctx, src, c.conn, c.Src, c.Tgt)
	if err != nil {
		return err
	}
	in, err := c.Info(ctx)
	if err != nil {
		return err
	}
	if !id.Matches(in.SourceSystem) {
		return fmt.Errorf("source: link %s was made from %s, but the source given is a different database; give the link's source", c.Name, in.SourceDesc)
	}
	return nil
}

// DropSourceSlots drops the link's replication slots on the source, ending
// the sessions that use them; it returns how many it dropped.
func DropSourceSlots(ctx context.Context, src *pgx.Conn, name string) (int, error) {
	n := 0
	for _, slot := range []string{NamesFor(name).Slot, NamesFor(name).SyncSlot} {
		dropped, err := DropSlot(ctx, src, slot)
		if err != nil {
			return n, err
		}
		if dropped {
			n++
		}
	}
	// The capture feeds the slot: without it, it has no one to write for.
	return n, RemoveCapture(ctx, src, name)
}
