package validate

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/stream"
)

// LinkOptions are what `pglink validate` needs.
type LinkOptions struct {
	Name, Source, Target string
	Tables               []string // include patterns; empty: all the link's tables
	Quick                bool
	MaxRows, Jobs        int
	Progress             func(TableProgress)
	PauseTimeout         time.Duration // how long to wait for the link to pause; default 60s
}

// Link compares the link's tables on both sides at one consistent
// point: a source snapshot at position X, and the target when it has applied
// exactly the transactions before X. The running link pauses only while
// the target snapshot is taken; the source's writes never stop.
func Link(ctx context.Context, o LinkOptions) (Report, error) {
	var rep Report
	if err := state.ValidateName(o.Name); err != nil {
		return rep, err
	}
	src, tgt, err := state.ParseEndpoints(o.Source, o.Target)
	if err != nil {
		return rep, err
	}
	ctl, err := tgt.Connect(ctx)
	if err != nil {
		return rep, err
	}
	defer ctl.Close(context.WithoutCancel(ctx))
	row, tables, err := validationTables(ctx, ctl, src, tgt, o)
	if err != nil {
		return rep, err
	}
	snaps, err := takeSnapshots(ctx, src, tgt, ctl, row, o.PauseTimeout)
	if err != nil {
		return rep, err
	}
	defer snaps.close(ctx)
	rep, err = Compare(ctx, Options{
		Source: src.Config, Target: tgt.Config, SourceSnapshot: snaps.source, TargetSnapshot: snaps.target,
		Tables: tables, Jobs: o.Jobs, MaxRows: o.MaxRows, Quick: o.Quick, Progress: o.Progress,
	})
	if err != nil {
		return rep, err
	}
	// The data may be the same today and drift tomorrow: a table others
	// can write is reported.
	if rep.Warnings, err = state.MissingGuards(ctx, ctl, state.NamesFor(o.Name), tables); err != nil {
		return rep, err
	}
	return rep, nil
}

// validationTables checks that the link can be validated and lists its tables.
func validationTables(ctx context.Context, ctl *pgx.Conn, src, tgt *endpoint.Endpoint, o LinkOptions) (*state.Link, []catalog.Table, error) {
	exists, err := state.Exists(ctx, ctl)
	if err != nil {
		return nil, nil, err
	}
	if !exists {
		return nil, nil, fmt.Errorf("target: there is no link %s here (no pglink schema); check --target and --name", o.Name)
	}
	row, err := state.Load(ctx, ctl, o.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("target: link %s: %w", o.Name, err)
	}
	if row.Phase != state.PhaseReplicating {
		return nil, nil, fmt.Errorf("link %s is %s: validation compares a replicating link (start it with pglink start and wait for the phase replicating)", o.Name, row.Phase)
	}
	running, err := state.LeaseHeld(ctx, ctl, o.Name)
	if err != nil {
		return nil, nil, err
	}
	if !running {
		return nil, nil, fmt.Errorf("link %s is not running: validation needs the link's process to pause it at a consistent point; run pglink start --name %s first", o.Name, o.Name)
	}
	conn, err := src.Connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	id, err := state.SourceIdentity(ctx, conn, ctl, src, tgt)
	if err != nil {
		return nil, nil, err
	}
	if !id.Matches(row.SourceSystem) {
		return nil, nil, fmt.Errorf("source: link %s was made from %s, but the source given is a different database; give the link's source", o.Name, row.SourceDesc)
	}
	all, err := catalog.Tables(ctx, conn, catalog.Filter{Include: row.Include, Exclude: row.Exclude})
	if err != nil {
		return nil, nil, fmt.Errorf("source: list tables: %w", err)
	}
	if len(o.Tables) == 0 {
		return row, all, nil
	}
	f := catalog.Filter{Include: o.Tables}
	var out []catalog.Table
	for _, t := range all {
		if f.Match(t.Schema, t.Name) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("--tables %v matches none of link %s's tables", o.Tables, o.Name)
	}
	return row, out, nil
}

// snapshots are the two exported snapshots, kept alive by their sessions.
type snapshots struct {
	source, target string
	at             change.LSN
	srcRepl        interface{ Close(context.Context) error }
	tgtTx          pgx.Tx
	tgtConn        *pgx.Conn
}

func (s *snapshots) close(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	if s.tgtTx != nil {
		s.tgtTx.Rollback(ctx)
	}
	if s.tgtConn != nil {
		s.tgtConn.Close(ctx)
	}
	if s.srcRepl != nil {
		s.srcRepl.Close(ctx)
	}
}

func takeSnapshots(ctx context.Context, src, tgt *endpoint.Endpoint, ctl *pgx.Conn, row *state.Link, timeout time.Duration) (*snapshots, error) {
	if timeout == 0 {
		timeout = time.Minute
	}
	s := &snapshots{}
	repl, err := src.ConnectPg(ctx, stream.ReplicationConfig(&src.Config.Config))
	if err != nil {
		return nil, err
	}
	s.srcRepl = repl
	export := func() (change.LSN, error) {
		info, err := stream.CreateSlot(ctx, repl, state.NamesFor(row.Name).Slot+"_val", true, true)
		if err != nil {
			return 0, fmt.Errorf("source: export a snapshot for validation: %w", err)
		}
		s.source, s.at = info.SnapshotName, info.ConsistentPoint
		return info.ConsistentPoint, nil
	}
	nconn, err := src.Connect(ctx)
	if err != nil {
		s.close(ctx)
		return nil, err
	}
	defer nconn.Close(context.WithoutCancel(ctx))
	release, err := state.RequestPause(ctx, ctl, row.Name, export, state.Nudger(nconn), timeout)
	if err != nil {
		s.close(ctx)
		return nil, err
	}
	defer release()
	if err := s.exportTarget(ctx, tgt); err != nil {
		s.close(ctx)
		return nil, err
	}
	return s, nil
}

// exportTarget takes the target snapshot while the link is paused, and
// checks that the target has applied exactly the transactions before the
// source snapshot's position.
func (s *snapshots) exportTarget(ctx context.Context, tgt *endpoint.Endpoint) error {
	conn, err := tgt.Connect(ctx)
	if err != nil {
		return err
	}
	s.tgtConn = conn
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("target: begin snapshot: %w", err)
	}
	s.tgtTx = tx
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&s.target); err != nil {
		return fmt.Errorf("target: export snapshot: %w", err)
	}
	return nil
}
