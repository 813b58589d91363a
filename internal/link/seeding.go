package link

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/seed"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/stream"
)

// seed brings the target from nothing to a consistent copy, step by step;
// each step is recorded in the target, so a restart goes on where the last
// process stopped.
func (r *runner) seed(ctx context.Context) error {
	for {
		var err error
		switch r.row.SeedStep {
		case state.StepSchema:
			err = r.seedSchema(ctx)
		case state.StepCopy:
			err = r.seedData(ctx)
		case state.StepPost:
			err = r.seedPostData(ctx)
		case state.StepDone:
			if err := r.carrySettings(ctx); err != nil {
				return err
			}
			if err := r.guard(ctx); err != nil {
				return err
			}
			if err := state.SetPhase(ctx, r.tgtConn, r.cfg.Name, state.PhaseReplicating); err != nil {
				return err
			}
			r.log.Info("seeding done; replicating")
			return state.AddHistory(ctx, r.tgtConn, r.cfg.Name, state.EventSeeded, "")
		default:
			return fmt.Errorf("link %s has an unknown seeding step %q", r.cfg.Name, r.row.SeedStep)
		}
		if err != nil {
			return err
		}
	}
}

func (r *runner) advance(ctx context.Context, step string) error {
	if err := state.SetSeedStep(ctx, r.tgtConn, r.cfg.Name, step); err != nil {
		return err
	}
	r.row.SeedStep = step
	return nil
}

func (r *runner) schemaOptions() seed.SchemaOptions {
	return seed.SchemaOptions{Source: r.src.ConnString(), Target: r.tgt.ConnString(), Tables: r.tables, Logger: r.log}
}

func (r *runner) seedSchema(ctx context.Context) error {
	done, err := r.preDataDone(ctx)
	if err != nil {
		return err
	}
	if r.row.SchemaMode == SchemaCopy && !done {
		r.log.Info("copying the schema (pre-data)")
		rep, err := seed.PreData(ctx, r.schemaOptions())
		if err != nil {
			return fmt.Errorf("seed schema: %w", err)
		}
		r.reportRoles(ctx, rep)
	}
	if err := r.guard(ctx); err != nil {
		return err
	}
	return r.advance(ctx, state.StepCopy)
}

// preDataDone reports whether an earlier process applied the pre-data
// schema (one transaction) but died before it could record that.
func (r *runner) preDataDone(ctx context.Context) (bool, error) {
	if r.isNew {
		return false, nil
	}
	existing, err := conflictingTables(ctx, r.tgtConn, r.tables)
	if err != nil {
		return false, err
	}
	return len(existing) == len(r.tables), nil
}

func (r *runner) reportRoles(ctx context.Context, rep seed.Report) {
	if len(rep.MissingRoles) == 0 {
		return
	}
	msg := "roles missing on the target; their owners and grants were not copied: " + strings.Join(rep.MissingRoles, ", ")
	r.log.Warn(msg)
	if err := state.AddHistory(ctx, r.tgtConn, r.cfg.Name, state.EventMissingRoles, msg); err != nil {
		r.log.Warn("could not record missing roles", "error", err)
	}
}

// guard makes the link's target tables read-only for everyone but pglink.
func (r *runner) guard(ctx context.Context) error {
	ddl, err := state.GuardTables(ctx, r.tgtConn, r.names, r.tables)
	if err != nil {
		return err
	}
	if !ddl {
		r.log.Warn("target: schema changes to the linked tables are not refused: only a superuser can create the event triggers of the DDL guard; the tables are read-only all the same",
			"remedy", "run pglink start again as a superuser of the target to add it")
	}
	return nil
}

func (r *runner) seedPostData(ctx context.Context) error {
	if r.row.SchemaMode == SchemaCopy {
		r.log.Info("building indexes, constraints and triggers (post-data)", "jobs", r.cfg.Jobs)
		o := r.schemaOptions()
		o.Dumped, r.postDump = r.postDump, nil
		o.Built, r.earlyBuilt = r.earlyBuilt, nil
		rep, err := seed.PostData(ctx, o, r.cfg.Jobs)
		if err != nil {
			return fmt.Errorf("seed indexes and constraints: %w", err)
		}
		r.reportRoles(ctx, rep)
	}
	return r.advance(ctx, state.StepDone)
}

// seedData copies every table not yet copied. The first time, the copy
// reads the snapshot that the link's slot exported, so copy and stream meet
// exactly. After a restart the slot's snapshot is gone: the remaining tables
// are copied from a temporary slot's snapshot, and that slot's position is
// recorded per table, so the stream skips their changes up to it.
func (r *runner) seedData(ctx context.Context) error {
	if err := r.endStaleSeeding(ctx); err != nil {
		return err
	}
	rows, err := state.LoadTables(ctx, r.tgtConn, r.cfg.Name)
	if err != nil {
		return err
	}
	todo, err := r.tablesToCopy(ctx, rows)
	if err != nil {
		return err
	}
	var copiedRows, copiedBytes int64
	for _, t := range rows {
		if t.State == state.TableCopied {
			copiedRows, copiedBytes = copiedRows+t.Rows, copiedBytes+t.Bytes
		}
	}
	r.cfg.Live.seedTodo(len(todo), copiedRows, copiedBytes)
	if len(todo) > 0 {
		if err := r.copyTables(ctx, todo); err != nil {
			return err
		}
	}
	return r.advance(ctx, state.StepPost)
}

// tablesToCopy returns the link's tables not copied yet, emptied on the
// target (a killed copy may have committed some of a table's ranges).
func (r *runner) tablesToCopy(ctx context.Context, rows []state.Table) ([]catalog.Table, error) {
	byKey := map[string]catalog.Table{}
	for _, t := range r.tables {
		byKey[t.Key()] = t
	}
	var todo []catalog.Table
	var names []string
	for _, row := range rows {
		if row.State == state.TableCopied {
			continue
		}
		t, ok := byKey[row.Key()]
		if !ok {
			return nil, fmt.Errorf("source: table %s of link %s no longer exists; drop the link and start again", row.Key(), r.cfg.Name)
		}
		todo = append(todo, t)
		names = append(names, t.QualifiedName())
	}
	if len(names) > 0 {
		if _, err := r.tgtConn.Exec(ctx, "TRUNCATE "+strings.Join(names, ", ")); err != nil {
			return nil, fmt.Errorf("target: empty the tables to copy: %w", err)
		}
	}
	return todo, nil
}

func (r *runner) copyTables(ctx context.Context, todo []catalog.Table) error {
	slot, err := state.LookupSlot(ctx, r.srcConn, r.names.Slot)
	if err != nil {
		return err
	}
	replConn, err := r.src.ConnectPg(ctx, stream.ReplicationConfig(&r.src.Config.Config))
	if err != nil {
		return err
	}
	var closeOnce sync.Once
	release := func() { closeOnce.Do(func() { replConn.Close(context.WithoutCancel(ctx)) }) }
	defer release()
	info, err := r.exportSnapshot(ctx, replConn, slot.Exists)
	if err != nil {
		return err
	}
	// The post-data section is dumped while the tables copy, as of the
	// copy's snapshot; the session that exported it closes once both the
	// jobs and pg_dump have taken it.
	imported := release
	r.postDump = nil
	if r.row.SchemaMode == SchemaCopy {
		o := r.schemaOptions()
		o.Snapshot = info.SnapshotName
		dump := seed.DumpAhead(ctx, o, "post-data")
		r.postDump = dump
		imported = func() {
			go func() {
				<-dump.Done()
				release()
			}()
		}
	}
	// A table's indexes and key constraints are built as soon as its copy
	// is committed, beside the copies of the others.
	var early *seed.EarlyBuilds
	r.earlyBuilt = nil
	if r.postDump != nil {
		o := r.schemaOptions()
		o.Dumped = r.postDump
		earlyCtx, stopEarly := context.WithCancel(ctx)
		early = seed.StartEarlyBuilds(earlyCtx, o, max(1, r.cfg.Jobs/2), len(todo))
		defer func() {
			// After a failed copy: no build session may outlive it.
			stopEarly()
			early.Finish()
		}()
	}
	r.log.Info("copying tables", "tables", len(todo), "jobs", r.cfg.Jobs, "snapshot_lsn", info.ConsistentPoint.String())
	prog := newProgressWriter(r.tgtConn.Config(), r.cfg.Name, func(cp report.CopyProgress) {
		r.cfg.Live.copyProgress(cp)
		if r.cfg.Progress != nil {
			r.cfg.Progress(cp)
		}
	})
	defer prog.close(ctx)
	for _, t := range todo {
		if err := state.MarkTable(ctx, r.tgtConn, r.cfg.Name, state.Table{Schema: t.Schema, Name: t.Name, State: state.TableCopying}); err != nil {
			return err
		}
	}
	srcCfg, tgtCfg := r.src.Config.Copy(), r.tgt.Config.Copy()
	srcCfg.RuntimeParams["application_name"] = seedingAppName(r.cfg.Name)
	tgtCfg.RuntimeParams["application_name"] = seedingAppName(r.cfg.Name)
	stats, err := seed.Copy(ctx, seed.CopyOptions{
		Source: srcCfg, Target: tgtCfg, Snapshot: info.SnapshotName, Tables: todo, Jobs: r.cfg.Jobs,
		Progress: prog.report, Logger: r.log,
		TableDone: func(ctx context.Context, t catalog.Table, rows, bytes int64) error {
			if err := r.tableCopied(ctx, t, rows, bytes, info.ConsistentPoint); err != nil {
				return err
			}
			if early != nil {
				early.TableCopied(t)
			}
			return nil
		},
	}, imported)
	if err != nil {
		return fmt.Errorf("seed data: %w", err)
	}
	if early != nil {
		built, err := early.Finish()
		if err != nil {
			return fmt.Errorf("seed indexes and constraints: %w", err)
		}
		r.earlyBuilt = built
		r.log.Info("indexes and constraints built beside the copy", "statements", len(built))
	}
	r.log.Info("tables copied", "tables", stats.Tables, "rows", stats.Rows, "bytes", stats.Bytes, "elapsed", stats.Elapsed.Round(time.Millisecond))
	return nil
}

// exportSnapshot creates the link's slot with an exported snapshot, or,
// when the slot exists already (a restart), a temporary one.
func (r *runner) exportSnapshot(ctx context.Context, conn *pgconn.PgConn, slotExists bool) (stream.SlotInfo, error) {
	if !slotExists {
		info, err := stream.CreateSlot(ctx, conn, r.names.Slot, false, true)
		if err != nil {
			return info, fmt.Errorf("source: create replication slot %s: %w", r.names.Slot, err)
		}
		return info, state.AddHistory(ctx, r.tgtConn, r.cfg.Name, state.EventSlotCreated, info.ConsistentPoint.String())
	}
	info, err := stream.CreateSlot(ctx, conn, r.names.SyncSlot, true, true)
	if err != nil {
		return info, fmt.Errorf("source: create temporary replication slot %s: %w", r.names.SyncSlot, err)
	}
	return info, nil
}

func (r *runner) tableCopied(ctx context.Context, t catalog.Table, rows, bytes int64, at change.LSN) error {
	row := state.Table{Schema: t.Schema, Name: t.Name, State: state.TableCopied, Rows: rows, Bytes: bytes, SyncLSN: at}
	// The job callbacks run concurrently; the control session is not
	// safe for that, so each record gets its own short session.
	conn, err := pgx.ConnectConfig(ctx, r.tgt.Config.Copy())
	if err != nil {
		return r.tgt.Explain(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := state.MarkTable(ctx, conn, r.cfg.Name, row); err != nil {
		return err
	}
	r.cfg.Live.tableDone()
	r.log.Info("table copied", "table", t.Key(), "rows", rows, "bytes", bytes)
	return nil
}
