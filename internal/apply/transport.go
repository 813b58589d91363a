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

// lane is one target session of the apply. With two, batches of folded
// changes alternate between them (commitOnOtherLane), so the target
// applies one batch while it commits the one before. Each lane records
// through an origin of its own: the applied position is the furthest of
// them (OriginProgress), since the batches commit in order.
type lane struct {
	conn   *pgx.Conn
	origin string
	snd    *sender
}

// transport is the apply's side of the target sessions. It sends a batch
// and goes on without reading its results (inflight), so pglink never
// waits for the target between two batches; what it sent it must be able
// to apply again row by row, so it holds the open batch's fold, from the
// first folded change to the batch's settling.
type transport struct {
	a           *Applier
	plan        *planner
	lanes       []*lane // the target sessions; snd is lanes[lane]'s sender
	lane        int
	snd         *sender
	fold        *fold       // changes folded for set-based apply (fold.go)
	spares      []*fold     // emptied folds to reuse
	inflight    []*inflight // batches sent but not yet read back, oldest first
	needBegin   bool        // the open batch's BEGIN is not queued yet
	beginAt     change.LSN
	lastDurable time.Time // when the last batch that waits for its WAL flush was sent
	// report counts a settled batch in the Applier's Stats.
	report func(end batchEnd, conflicts int64)

	keyBuf []byte
	args   [][]byte
	fmts   []int16
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
func (tr *transport) useLane(i int) {
	tr.lane = i
	tr.snd = tr.lanes[i].snd
}

// conn is the session of the current lane.
func (tr *transport) conn() *pgx.Conn { return tr.lanes[tr.lane].conn }

// closed reports whether a target session is closed.
func (tr *transport) closed() bool {
	for _, l := range tr.lanes {
		if l.conn.IsClosed() {
			return true
		}
	}
	return false
}

// finish rolls back whatever is still open and releases the origins.
func (tr *transport) finish(ctx context.Context) error {
	var errs []error
	for _, l := range tr.lanes {
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

// openBatch notes that a batch begins at the source transaction committed
// at at. BEGIN goes out with the batch's first statement (ensureBegun), so
// nothing is sent while the previous batch is in flight.
func (tr *transport) openBatch(at change.LSN) {
	tr.needBegin, tr.beginAt = true, at
}

// addToFold folds change c of table t, of shape s, into the open batch's
// fold.
func (tr *transport) addToFold(t *table, c *change.Change, s *shape, where change.Tuple) foldResult {
	res, buf := tr.fold.add(t, c, s, where, tr.keyBuf)
	tr.keyBuf = buf
	return res
}

// ensureBegun settles the batches in flight and queues the open batch's
// BEGIN when it is not queued yet: call it before queuing anything for the
// open batch.
func (tr *transport) ensureBegun(ctx context.Context) error {
	if err := tr.drain(ctx); err != nil {
		return err
	}
	if tr.needBegin {
		tr.queueBegin(ctx)
	}
	return nil
}

func (tr *transport) queueBegin(ctx context.Context) {
	tr.snd.control(ctx, "BEGIN", nil, nil, "begin target transaction", tr.beginAt)
	tr.needBegin = false
}

// rowStatement queues change c of table t as its own prepared statement,
// of shape s, on the row where identifies (shapeOf).
func (tr *transport) rowStatement(ctx context.Context, t *table, c *change.Change, s *shape, where change.Tuple) error {
	st, key, fresh := tr.plan.rowStmt(tr.lane, t, s)
	if fresh {
		tr.snd.prepare(ctx, t, st, key, c.CommitLSN)
	}
	tr.args, tr.fmts = params(tr.args, tr.fmts, st, c, where)
	tr.snd.row(ctx, t, st, c, where, tr.args, tr.fmts)
	if tr.snd.full() {
		return tr.snd.flush()
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
	kinds      kindCounts
	durable    bool // its COMMIT waits for the WAL flush
}

// commit sends the batch's COMMIT with the origin position and the
// progress row, behind the fold's set-based statements (one round trip),
// and leaves the batch in flight (inflight): the next batch is
// folded while the target works on this one. A COMMIT that is not durable
// does not wait for the WAL flush (see DurableEvery). A batch that ends
// the input for now (alone) goes with a Sync: it is read back at once, and
// nothing goes behind it.
func (tr *transport) commit(ctx context.Context, end batchEnd, alone bool) error {
	if tr.needBegin && len(tr.lanes) > 1 {
		return tr.commitOnOtherLane(ctx, end, alone)
	}
	plan := tr.plan.planFold(tr.fold) // while the batches in flight still run on the target
	begin := tr.ensureBegun
	if tr.needBegin {
		begin = tr.beginBehindInflight // the batch is all folded changes
	}
	if err := begin(ctx); err != nil {
		return err
	}
	if end.durable {
		tr.lastDurable = time.Now()
	}
	folded := tr.queueFold(ctx, plan)
	tr.queueCommit(ctx, end)
	if err := tr.snd.sendBatch(alone); err != nil {
		return err
	}
	fl := &inflight{batchEnd: end, alone: alone, lane: tr.lane}
	if folded {
		fl.fold, fl.plan = tr.takeFold(), plan
	}
	tr.inflight = append(tr.inflight, fl)
	return nil
}

// takeFold returns the open fold, which goes with its batch in flight,
// and puts an empty one in its place.
func (tr *transport) takeFold() *fold {
	f := tr.fold
	if n := len(tr.spares); n > 0 {
		tr.fold = tr.spares[n-1]
		tr.spares = tr.spares[:n-1]
	} else {
		tr.fold = &fold{}
	}
	return f
}

// queueCommit queues the origin's position, the progress row and the
// COMMIT of a batch.
func (tr *transport) queueCommit(ctx context.Context, end batchEnd) {
	last := end.last
	lsn := []byte(last.EndLSN.String())
	at := last.CommitTime
	if at.IsZero() {
		at = time.Unix(0, 0)
	}
	ts := []byte(at.UTC().Format("2006-01-02 15:04:05.999999Z07:00"))
	tr.snd.control(ctx, originXactSQL, [][]byte{lsn, ts}, nil, "record source position in replication origin "+tr.lanes[tr.lane].origin, last.CommitLSN)
	if sql := tr.a.opts.ProgressSQL; sql != "" {
		args := [][]byte{lsn, ts, strconv.AppendInt(nil, end.txns, 10), strconv.AppendInt(nil, end.rows, 10)}
		tr.snd.control(ctx, sql, args, []uint32{25, 1184, 20, 20}, "record progress", last.CommitLSN)
	}
	if !end.durable {
		tr.snd.control(ctx, "SET LOCAL synchronous_commit = off", nil, nil, "commit without waiting for the WAL flush", last.CommitLSN)
	}
	tr.snd.commit(ctx, last.CommitLSN)
}
