package apply

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/change"
)

// lane is one target session of the apply.
type lane struct {
	conn   *pgx.Conn
	origin string
	snd    *sender
}

// setupOrigin binds the session to the origin, so commits record their
// source position there. A session holds one origin at a time: one left
// set up by an earlier Run on this session is reset first.
func setupOrigin(ctx context.Context, conn *pgx.Conn, origin string) error {
	_, err := conn.Exec(ctx, `SELECT CASE WHEN pg_replication_origin_session_is_setup()
		THEN pg_replication_origin_session_reset() END`)
	if err == nil {
		_, err = conn.Exec(ctx, `SELECT pg_replication_origin_session_setup($1::text)`, origin)
	}
	if err != nil {
		return fmt.Errorf("set up replication origin %s on the target session: %w", origin, err)
	}
	return nil
}

// useLane makes lane i the one statements are queued on.
func (r *run) useLane(i int) {
	r.lane = i
	r.snd = r.lanes[i].snd
}

// conn is the session of the current lane.
func (r *run) conn() *pgx.Conn { return r.lanes[r.lane].conn }

// closed reports whether a session of the run is closed.
func (r *run) closed() bool {
	for _, l := range r.lanes {
		if l.conn.IsClosed() {
			return true
		}
	}
	return false
}

// finish rolls back whatever is still open and releases the origins.
func (r *run) finish(ctx context.Context) error {
	var errs []error
	for _, l := range r.lanes {
		conn := l.conn
		if conn.IsClosed() {
			continue
		}
		if err := l.snd.flush(); err != nil {
			errs = append(errs, err)
		}
		if conn.PgConn().TxStatus() != 'I' {
			if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
				errs = append(errs, fmt.Errorf("roll back target transaction: %w", err))
			}
		}
		if _, err := conn.Exec(ctx, `SELECT pg_replication_origin_session_reset()`); err != nil {
			errs = append(errs, fmt.Errorf("reset replication origin on the target session: %w", err))
		}
	}
	return errors.Join(errs...)
}

// ensureBegun settles the batches in flight and queues the open batch's
// BEGIN when it is not queued yet: call it before queuing anything for the
// open batch.
func (r *run) ensureBegun(ctx context.Context) error {
	if err := r.settleInflight(ctx); err != nil {
		return err
	}
	if r.needBegin {
		r.queueBegin(ctx)
	}
	return nil
}

func (r *run) queueBegin(ctx context.Context) {
	r.snd.control(ctx, "BEGIN", nil, nil, "begin target transaction", r.beginAt)
	r.needBegin = false
}

// rowStatement queues change c of table t as its own prepared statement.
func (r *run) rowStatement(ctx context.Context, t *table, c *change.Change) error {
	where, err := shapeOf(&r.shape, t, c)
	if err != nil {
		return fmt.Errorf("apply %s %s %s at source %s: %w", c.Kind, preposition(c.Kind), t.quoted, c.CommitLSN, err)
	}
	if c.Kind == change.Update && len(r.shape.setCols) == 0 {
		return nil
	}
	st, key, fresh := r.plan.rowStmt(r.lane, t, &r.shape)
	if fresh {
		r.snd.prepare(ctx, t, st, key, c.CommitLSN)
	}
	r.args, r.fmts = params(r.args, r.fmts, st, c, where)
	r.snd.row(ctx, t, st, c, where, r.args, r.fmts)
	if r.snd.full() {
		return r.snd.flush()
	}
	return nil
}

// Statement that records the batch's last source commit in the origin, in
// the target transaction's commit record. pg_current_xact_id makes sure
// the transaction has an XID, so it writes a commit record (and so moves
// the origin) even when it applied nothing, e.g. only logical messages.
const originXactSQL = `SELECT pg_replication_origin_xact_setup($1::pg_lsn, $2::timestamptz), pg_current_xact_id()`

// batchEnd is what a batch reports once its COMMIT is done.
type batchEnd struct {
	last       *change.Change // its last source commit
	txns, rows int64
	durable    bool // its COMMIT waits for the WAL flush
}

// commitBatch sends the batch's COMMIT with the origin position and the
// progress row, behind the fold's set-based statements (one round trip),
// and leaves the batch in flight (see inflight.go): the next batch is
// folded while the target works on this one. A COMMIT that is not durable
// does not wait for the WAL flush (see DurableEvery). A batch that ends
// the input for now (alone) goes with a Sync: it is read back at once, and
// nothing goes behind it.
func (r *run) commitBatch(ctx context.Context, durable, alone bool) error {
	if r.needBegin && len(r.lanes) > 1 {
		return r.commitBeside(ctx, durable, alone)
	}
	plan := r.plan.planFold(r.fold) // while the batches in flight still run on the target
	begin := r.ensureBegun
	if r.needBegin {
		begin = r.beginBehind // the batch is all folded changes
	}
	if err := begin(ctx); err != nil {
		return err
	}
	end := batchEnd{last: r.lastCommit, txns: r.batchTxns, rows: r.batchRows, durable: durable}
	if durable {
		r.lastDurable = time.Now()
	}
	folded := r.queueFold(ctx, plan)
	r.queueCommit(ctx, end)
	r.batchOpen = false
	r.batchTxns, r.batchRows, r.lastCommit = 0, 0, nil
	if err := r.snd.sendBatch(alone); err != nil {
		return err
	}
	fl := &inflight{batchEnd: end, alone: alone, lane: r.lane}
	if folded {
		fl.fold, fl.plan = r.takeFold(), plan
	}
	r.inflight = append(r.inflight, fl)
	return nil
}

// takeFold returns the open fold, which goes with its batch in flight,
// and puts an empty one in its place.
func (r *run) takeFold() *fold {
	f := r.fold
	if n := len(r.spares); n > 0 {
		r.fold = r.spares[n-1]
		r.spares = r.spares[:n-1]
	} else {
		r.fold = &fold{}
	}
	return f
}

// queueCommit queues the origin's position, the progress row and the
// COMMIT of a batch.
func (r *run) queueCommit(ctx context.Context, end batchEnd) {
	last := end.last
	lsn := []byte(last.EndLSN.String())
	at := last.CommitTime
	if at.IsZero() {
		at = time.Unix(0, 0)
	}
	ts := []byte(at.UTC().Format("2006-01-02 15:04:05.999999Z07:00"))
	r.snd.control(ctx, originXactSQL, [][]byte{lsn, ts}, nil, "record source position in replication origin "+r.lanes[r.lane].origin, last.CommitLSN)
	if sql := r.a.opts.ProgressSQL; sql != "" {
		args := [][]byte{lsn, ts, strconv.AppendInt(nil, end.txns, 10), strconv.AppendInt(nil, end.rows, 10)}
		r.snd.control(ctx, sql, args, []uint32{25, 1184, 20, 20}, "record progress", last.CommitLSN)
	}
	if !end.durable {
		r.snd.control(ctx, "SET LOCAL synchronous_commit = off", nil, nil, "commit without waiting for the WAL flush", last.CommitLSN)
	}
	r.snd.commit(ctx, last.CommitLSN)
}
