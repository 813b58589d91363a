package link

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/seed"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/stream"
	"github.com/pglink/pglink/internal/wait"
)

// joinAppName is the application name of a joining table's copy
// sessions, by which the next attempt ends those an earlier one left.
func joinAppName(link string) string { return "pglink join " + link }

// loadJoins reads, at a replication session's start, the tables whose
// copy an earlier session did not finish, and adds each to the
// publication (the process may have died between the CREATE's commit on
// the target and that step), so that the carrier counts it among the
// linked tables and the stream carries its changes. Their copy starts
// again from the beginning.
func (r *runner) loadJoins(ctx context.Context) (*joins, error) {
	j := newJoins(r.src, catalog.Filter{Include: r.row.Include, Exclude: r.row.Exclude})
	rows, err := state.LoadJoining(ctx, r.tgtConn, r.cfg.Name)
	if err != nil || len(rows) == 0 {
		return j, err
	}
	for _, t := range rows {
		var rel *uint32
		err := r.srcConn.QueryRow(ctx, `SELECT to_regclass(format('%I.%I', $1::text, $2::text))::oid`, t.Schema, t.Name).Scan(&rel)
		if err != nil {
			return nil, fmt.Errorf("source: look up table %s: %w", t.Key(), err)
		}
		if rel == nil {
			j.add(t.Key(), 0, 0) // gone on the source: see joinTable
			continue
		}
		if err := state.AddToPublication(ctx, r.srcConn, r.names.Publication, *rel, quotedKey(t)); err != nil {
			return nil, err
		}
		j.add(t.Key(), *rel, 0)
	}
	r.log.Info("tables created on the source are joining the link; their copy starts again", "tables", describeJoining(rows))
	return j, nil
}

func quotedKey(t state.Table) string {
	return catalog.Table{Schema: t.Schema, Name: t.Name}.QualifiedName()
}

// joinTables copies the joining tables, one at a time, as they are
// recorded on the target, until ctx ends. A table whose copy fails is
// tried again after a backoff (a schema change that reached the source
// before the copy's snapshot, and the target not yet, makes the copy fail
// until the apply has run it); the error is logged and recorded as the
// link's last error meanwhile, and the apply waits for the table's copy at
// its first change after the snapshot, so the lag shows it too.
func (r *runner) joinTables(ctx context.Context, j *joins) error {
	var src, tgt *pgx.Conn
	defer func() {
		for _, c := range []*pgx.Conn{src, tgt} {
			if c != nil {
				c.Close(context.WithoutCancel(ctx))
			}
		}
	}()
	delays, next := map[string]time.Duration{}, map[string]time.Time{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var err error
		if src, err = reopen(ctx, src, r.src); err != nil {
			return err
		}
		if tgt, err = reopen(ctx, tgt, r.tgt); err != nil {
			return err
		}
		var rows []state.Table
		err = state.ControlQuery(ctx, endpoint.Target, "the read of the joining tables", func(ctx context.Context) error {
			rows, err = state.LoadJoining(ctx, tgt, r.cfg.Name)
			return err
		})
		if err != nil {
			return err
		}
		for _, t := range rows {
			key := t.Key()
			if time.Now().Before(next[key]) {
				continue
			}
			j.ensure(key)
			err := r.joinTable(ctx, j, src, tgt, t)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				delays[key] = nextBackoff(delays[key])
				if noID := (*errNoIdentity)(nil); errors.As(err, &noID) {
					delays[key] = 2 * time.Second // it waits for its key: look again soon
				}
				next[key] = time.Now().Add(delays[key])
				r.log.Warn("a table created on the source could not be copied to join the link; retrying", "table", key, "error", err, "in", delays[key])
				r.cfg.Live.NoteError(err, true)
				r.recordJoinError(ctx, tgt, key, err)
				break // the sessions may be gone: opened again at the top
			}
			if _, failed := delays[key]; failed {
				r.clearJoinError(ctx, tgt, key)
			}
			delete(delays, key)
			delete(next, key)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-j.wake:
		case <-tick.C:
		}
	}
}

// reopen returns conn, or a new session of ep when conn is closed.
func reopen(ctx context.Context, conn *pgx.Conn, ep *endpoint.Endpoint) (*pgx.Conn, error) {
	if conn != nil && !conn.IsClosed() {
		return conn, nil
	}
	return ep.Connect(ctx)
}

func (r *runner) recordJoinError(ctx context.Context, tgt *pgx.Conn, key string, err error) {
	if tgt.IsClosed() {
		return
	}
	remedy := fmt.Sprintf("pglink copies table %s again by itself; if it keeps failing, fix the cause named (the source table's owner, the target table) or take the table out of the link", key)
	serr := state.ControlQuery(ctx, endpoint.Target, "the record of a joining table's error", func(ctx context.Context) error {
		return state.SetError(ctx, tgt, r.cfg.Name, fmt.Sprintf("%sis not copied yet: %v", joinErrorPrefix(key), err), remedy)
	})
	if serr != nil {
		r.log.Warn("could not record the joining table's error", "error", serr)
	}
}

// joinTable copies one joining table: it adds the table to the
// publication, empties it on the target, takes a snapshot with a
// temporary slot (gone with its session: no slot is left behind, ever),
// copies the table at it and records the snapshot's position as the
// table's sync LSN, with the state copied, once the copy is committed.
// The publication comes first: a transaction that commits after the
// snapshot began after its creation started, which waits for every
// transaction running then, so it began after the table was published,
// and the stream carries its changes.
func (r *runner) joinTable(ctx context.Context, j *joins, src, tgt *pgx.Conn, row state.Table) error {
	key := row.Key()
	tab, err := r.sourceTable(ctx, src, row)
	if err != nil {
		return err
	}
	if tab == nil {
		return r.joiningGone(ctx, j, tgt, row)
	}
	if err := r.publishJoining(ctx, src, tab); err != nil {
		return err
	}
	if err := state.MarkTable(ctx, tgt, r.cfg.Name, state.Table{Schema: row.Schema, Name: row.Name, State: state.TableCopying}); err != nil {
		return err
	}
	if _, err := tgt.Exec(ctx, "TRUNCATE "+tab.QualifiedName()); err != nil {
		return fmt.Errorf("target: empty table %s to copy it: %w", key, err)
	}
	if err := r.endStaleJoin(ctx, src, tgt); err != nil {
		return err
	}
	replConn, err := r.src.ConnectPg(ctx, stream.ReplicationConfig(&r.src.Config.Config))
	if err != nil {
		return err
	}
	var once sync.Once
	release := func() { once.Do(func() { replConn.Close(context.WithoutCancel(ctx)) }) }
	defer release()
	j.set(key, joinTaking, 0)
	done := false
	defer func() {
		if !done {
			j.set(key, joinIdle, 0)
		}
	}()
	info, err := stream.CreateSlot(ctx, replConn, r.names.SyncSlot, true, true)
	if err != nil {
		return fmt.Errorf("source: create temporary replication slot %s: %w", r.names.SyncSlot, err)
	}
	j.set(key, joinCopying, info.ConsistentPoint)
	r.log.Info("copying a table created on the source", "table", key, "snapshot_lsn", info.ConsistentPoint.String())
	// The catalog read again: every partition made before the snapshot.
	if tab, err = r.sourceTable(ctx, src, row); err != nil || tab == nil {
		return errors.Join(err, fmt.Errorf("source: table %s is gone", key))
	}
	prog := newProgressWriter(r.tgt.Config.Copy(), r.cfg.Name, r.cfg.Live.copyProgress)
	defer prog.close(ctx)
	srcCfg, tgtCfg := r.src.Config.Copy(), r.tgt.Config.Copy()
	srcCfg.RuntimeParams["application_name"] = joinAppName(r.cfg.Name)
	tgtCfg.RuntimeParams["application_name"] = joinAppName(r.cfg.Name)
	stats, err := seed.Copy(ctx, seed.CopyOptions{
		Source: srcCfg, Target: tgtCfg, Snapshot: info.SnapshotName, Tables: []catalog.Table{*tab}, Jobs: r.cfg.Jobs,
		Progress: prog.report, Logger: r.log,
		TableDone: func(ctx context.Context, t catalog.Table, rows, bytes int64) error {
			return state.RecordJoined(ctx, tgt, r.cfg.Name, state.Table{Schema: row.Schema, Name: row.Name, Rows: rows, Bytes: bytes, SyncLSN: info.ConsistentPoint})
		},
	}, release)
	if err != nil {
		return fmt.Errorf("copy table %s: %w", key, err)
	}
	done = true
	j.set(key, joinDone, info.ConsistentPoint)
	r.log.Info("a table created on the source joined the link", "table", key, "rows", stats.Rows, "sync_lsn", info.ConsistentPoint.String())
	return nil
}

// errNoIdentity is a joining table the source cannot publish yet.
type errNoIdentity struct{ table catalog.Table }

func (e *errNoIdentity) Error() string {
	return fmt.Sprintf("source: table %s has no primary key and no replica identity, so it joins the link once it has one "+
		"(published without, its UPDATE and DELETE would fail on the source); add a primary key, or run on the source: %s",
		e.table.Key(), strings.Join(catalog.IdentityFix(e.table), " "))
}

// publishJoining adds the joining table to the link's publication, but
// not one without a replica identity: the source refuses UPDATE and
// DELETE of a published table that has none, and pglink never makes the
// source's statements fail.
func (r *runner) publishJoining(ctx context.Context, src *pgx.Conn, tab *catalog.Table) error {
	if len(catalog.NoIdentity([]catalog.Table{*tab})) > 0 {
		in, err := state.InPublication(ctx, src, r.names.Publication, tab.OID)
		if err != nil {
			return err
		}
		if !in {
			return &errNoIdentity{table: *tab}
		}
	}
	return state.AddToPublication(ctx, src, r.names.Publication, tab.OID, tab.QualifiedName())
}

// clearJoinError clears the link's last error when it is the one a
// joining table's copy recorded.
func (r *runner) clearJoinError(ctx context.Context, tgt *pgx.Conn, key string) {
	err := state.ControlQuery(ctx, endpoint.Target, "the clearing of a joining table's error", func(ctx context.Context) error {
		_, err := tgt.Exec(ctx, `UPDATE pglink.links SET last_error = NULL, remedy = NULL WHERE name = $1 AND starts_with(last_error, $2)`,
			r.cfg.Name, joinErrorPrefix(key))
		return err
	})
	if err != nil {
		r.log.Warn("could not clear the joining table's error", "error", err)
	}
}

func joinErrorPrefix(key string) string { return "table " + key + ", created on the source, " }

// sourceTable reads the joining table from the source's catalog, or nil
// when the source has no table of that name.
func (r *runner) sourceTable(ctx context.Context, src *pgx.Conn, row state.Table) (*catalog.Table, error) {
	var tables []catalog.Table
	err := state.ControlQuery(ctx, endpoint.Source, "the read of a table created on the source", func(ctx context.Context) error {
		var err error
		tables, err = catalog.Tables(ctx, src, catalog.Filter{Include: []string{row.Key()}})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("source: read table %s: %w", row.Key(), err)
	}
	for i := range tables {
		if tables[i].Schema == row.Schema && tables[i].Name == row.Name {
			return &tables[i], nil
		}
	}
	return nil, nil
}

// joiningGone handles a joining table the source no longer has: once its
// drop has reached the target too, it is forgotten; until then it waits.
func (r *runner) joiningGone(ctx context.Context, j *joins, tgt *pgx.Conn, row state.Table) error {
	if err := state.ForgetJoining(ctx, tgt, r.cfg.Name, row); err != nil {
		return err
	}
	rows, err := state.LoadJoining(ctx, tgt, r.cfg.Name)
	if err != nil {
		return err
	}
	for _, t := range rows {
		if t.Key() == row.Key() {
			return fmt.Errorf("source: table %s, created on the source while linked, is not there any more (dropped or renamed); it is copied once its drop or rename reaches the target", row.Key())
		}
	}
	j.forget(row.Key())
	r.log.Info("a table created on the source was dropped before it was copied", "table", row.Key())
	return nil
}

// endStaleJoin ends what an earlier attempt at a joining table's copy
// left: its copy sessions on both sides (a silent network leaves them,
// holding the target table's locks) and the session that holds the
// temporary slot, whose name the next attempt needs.
func (r *runner) endStaleJoin(ctx context.Context, src, tgt *pgx.Conn) error {
	const endSessions = `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND (datname = current_database() AND application_name = $1
			OR pid IN (SELECT active_pid FROM pg_replication_slots WHERE slot_name = ANY($2)))`
	for _, s := range []struct {
		side  endpoint.Side
		conn  *pgx.Conn
		slots []string
	}{{endpoint.Target, tgt, nil}, {endpoint.Source, src, []string{r.names.SyncSlot}}} {
		err := state.ControlQuery(ctx, s.side, "the end of an earlier copy's sessions", func(ctx context.Context) error {
			_, err := s.conn.Exec(ctx, endSessions, joinAppName(r.cfg.Name), s.slots)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: end the sessions of an earlier copy: %w", s.side, err)
		}
	}
	deadline := time.Now().Add(state.ControlTimeout)
	for {
		var busy bool
		if err := src.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, r.names.SyncSlot).Scan(&busy); err != nil || !busy {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("source: the temporary slot %s is still held by an earlier session", r.names.SyncSlot)
		}
		if err := wait.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}
