package apply

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/pglink/pglink/internal/change"
)

// run is the state of one Run: the mapped tables with their prepared
// statements, the open source transaction and the open target batch.
type run struct {
	a      *Applier
	snd    *sender
	origin change.LSN // source transactions that commit before this are already applied
	tables map[*change.Relation]*table
	bySig  map[string]*table

	peeked   *change.Change // taken from the input to see whether more is waiting
	inClosed bool

	inTxn, skipTxn bool
	txnAt          change.LSN // CommitLSN of the open source transaction

	lanes []*lane // the target sessions; r.snd is lanes[lane]'s sender (lanes.go)
	lane  int

	batchOpen   bool
	batchStart  time.Time
	lastDurable time.Time // when the last batch that waits for its WAL flush was sent
	batchTxns   int64
	batchRows   int64
	lastCommit  *change.Change
	skipped     int64 // not yet added to Stats
	skipTxns    int64

	fold      *fold       // changes folded for set-based apply (fold.go)
	spares    []*fold     // emptied folds to reuse
	inflight  []*inflight // batches sent but not yet read back, oldest first (inflight.go)
	needBegin bool        // the open batch's BEGIN is not queued yet
	beginAt   change.LSN

	shape   shape
	keyBuf  []byte
	colBuf  []int  // planFold's scratch: a row's columns
	colKey  []byte // planFold's scratch: their key
	bulkKey []byte // queueBulk's scratch: a set-based statement's key
	args    [][]byte
	fmts    []int16
}

func (r *run) loop(ctx context.Context, in <-chan *change.Change) error {
	for {
		c, ok, err := r.next(ctx, in)
		if err != nil {
			return err
		}
		if !ok {
			return r.inputClosed(ctx)
		}
		if err := r.handle(ctx, c, in); err != nil {
			return err
		}
	}
}

// next returns the next change. Before it waits for the input, it sends
// what is queued and checks the results, so the target works while the
// source is quiet and an error does not wait for more input. When the
// source has more for the stream (moreComing), the stream is only
// momentarily behind: with nothing queued, and the last batch not sent
// alone (that one was committed as caught up, after such a wait), next
// first waits a while for the input with the batches in flight unread, so
// the target keeps working on them and the apply folds the next batch
// meanwhile.
func (r *run) next(ctx context.Context, in <-chan *change.Change) (*change.Change, bool, error) {
	if ctx.Err() != nil {
		return nil, false, ctx.Err()
	}
	if !r.waiting(in) && r.snd.unsent() == 0 && !r.sentAlone() && r.moreComing(r.origin) {
		r.waitInput(ctx, in, r.a.opts.MaxBatchDelay)
	}
	if c := r.peeked; c != nil {
		r.peeked = nil
		return c, true, nil
	}
	if r.inClosed {
		return nil, false, nil
	}
	if err := r.settleInflight(ctx); err != nil {
		return nil, false, err
	}
	if err := r.snd.flush(); err != nil {
		return nil, false, err
	}
	select {
	case <-ctx.Done():
		return nil, false, ctx.Err()
	case c, ok := <-in:
		return c, ok, nil
	}
}

// waiting reports whether another change is ready in the input, keeping it
// for next.
func (r *run) waiting(in <-chan *change.Change) bool {
	return r.waitInput(context.Background(), in, 0)
}

func (r *run) handle(ctx context.Context, c *change.Change, in <-chan *change.Change) error {
	switch c.Kind {
	case change.Begin:
		return r.begin(ctx, c)
	case change.Commit:
		return r.commit(ctx, c, in)
	case change.Insert, change.Update, change.Delete:
		if !r.inTxn {
			return fmt.Errorf("%s at source %s outside a source transaction", c.Kind, c.CommitLSN)
		}
		return r.rowChange(ctx, c)
	case change.Truncate:
		if !r.inTxn {
			return fmt.Errorf("TRUNCATE at source %s outside a source transaction", c.CommitLSN)
		}
		return r.truncate(ctx, c)
	case change.Message:
		return nil // nothing to apply; its transaction still commits and moves the origin
	}
	return fmt.Errorf("unknown change %s at source %s", c.Kind, c.CommitLSN)
}

// begin opens a source transaction. One whose commit lies before the
// origin's position was applied already (the server may send it again
// after a restart: it starts from the slot's confirmed position, which can
// be behind the target's), and is skipped whole.
func (r *run) begin(ctx context.Context, c *change.Change) error {
	if r.inTxn {
		return fmt.Errorf("BEGIN at source %s inside the source transaction at %s", c.CommitLSN, r.txnAt)
	}
	if c.CommitLSN >= r.origin {
		if err := r.hold(ctx, c.CommitLSN); err != nil {
			return err
		}
	}
	r.inTxn, r.txnAt = true, c.CommitLSN
	r.skipTxn = c.CommitLSN < r.origin
	if r.skipTxn {
		r.a.log.Debug("apply: source transaction already applied, skipped", "commit_lsn", c.CommitLSN.String(), "origin", r.origin.String())
	}
	if r.skipTxn || r.batchOpen {
		return nil
	}
	// BEGIN goes out with the batch's first statement (ensureBegun), so
	// nothing is sent while the previous batch is in flight.
	r.needBegin, r.beginAt = true, c.CommitLSN
	r.batchOpen, r.batchStart = true, time.Now()
	return nil
}

// hold waits, between two source transactions, while the gate holds the
// apply before the one at commitLSN; what was applied before is committed
// first, so the target shows exactly the transactions before it.
func (r *run) hold(ctx context.Context, commitLSN change.LSN) error {
	g := r.a.opts.Gate
	for g != nil && g.Holding(commitLSN) {
		if r.batchOpen {
			if err := r.commitBatch(ctx, true, true); err != nil {
				return err
			}
		}
		if err := r.settleInflight(ctx); err != nil {
			return err
		}
		if err := g.Wait(ctx, commitLSN); err != nil {
			return fmt.Errorf("hold before source transaction at %s: %w", commitLSN, err)
		}
	}
	return nil
}

// commit closes a source transaction and commits the batch when the input
// has nothing more waiting (caught up: low lag, and a durable commit) or
// the batch is full or old (a backlog: see DurableEvery).
func (r *run) commit(ctx context.Context, c *change.Change, in <-chan *change.Change) error {
	if !r.inTxn {
		return fmt.Errorf("COMMIT at source %s without BEGIN", c.CommitLSN)
	}
	r.inTxn = false
	if r.skipTxn {
		r.skipTxns++
		if !r.batchOpen {
			r.addStats(0, 0, 0)
		}
		return nil
	}
	r.batchTxns++
	r.lastCommit = c
	r.origin = max(r.origin, c.EndLSN)
	more := r.waiting(in)
	if !more && r.moreComing(c.EndLSN) {
		more = r.waitInput(ctx, in, r.a.opts.MaxBatchDelay-time.Since(r.batchStart))
	}
	if !more || r.batchTxns >= int64(r.a.opts.MaxBatchTxns) || time.Since(r.batchStart) >= r.a.opts.MaxBatchDelay {
		return r.commitBatch(ctx, !more || time.Since(r.lastDurable) >= r.a.opts.DurableEvery, !more)
	}
	return nil
}

// moreComing reports whether the source has a transaction for the stream
// after position end (see Options.SourceAhead).
func (r *run) moreComing(end change.LSN) bool {
	return r.a.opts.SourceAhead != nil && end <= r.a.opts.SourceAhead()
}

// waitInput waits up to d (not at all when d <= 0) for the next change,
// keeping it for next, and reports whether one came.
func (r *run) waitInput(ctx context.Context, in <-chan *change.Change, d time.Duration) bool {
	if r.peeked != nil {
		return true
	}
	if r.inClosed {
		return false
	}
	select {
	case c, ok := <-in:
		return r.keep(c, ok)
	default:
	}
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case c, ok := <-in:
		return r.keep(c, ok)
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// keep keeps a change received from the input for next, or notes that the
// input is closed.
func (r *run) keep(c *change.Change, ok bool) bool {
	if !ok {
		r.inClosed = true
		return false
	}
	r.peeked = c
	return true
}

// inputClosed commits the complete source transactions of the open batch.
// A source transaction cut off by the close cannot be committed: the whole
// batch is rolled back, and the origin, which did not move, makes the
// source send it again.
func (r *run) inputClosed(ctx context.Context) error {
	if r.inTxn && !r.skipTxn {
		return fmt.Errorf("%w (at source %s): target transaction rolled back", ErrIncompleteTransaction, r.txnAt)
	}
	if r.batchOpen {
		if err := r.commitBatch(ctx, true, true); err != nil {
			return err
		}
	}
	return r.settleInflight(ctx)
}

// addStats adds to the Applier's counters, with the skipped changes
// counted since the last call.
func (r *run) addStats(txns, rows, conflicts int64) {
	r.a.addStats(Stats{Txns: txns, Changes: rows, Conflicts: conflicts, Skipped: r.skipped, SkippedTxns: r.skipTxns})
	r.skipped, r.skipTxns = 0, 0
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
	plan := r.planFold() // while the batches in flight still run on the target
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

func (a *Applier) addStats(d Stats) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stats.Txns += d.Txns
	a.stats.Changes += d.Changes
	a.stats.Conflicts += d.Conflicts
	a.stats.Skipped += d.Skipped
	a.stats.SkippedTxns += d.SkippedTxns
	if d.Txns > 0 {
		a.stats.Batches++
	}
}

func (a *Applier) setLast(c *change.Change) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stats.LastEndLSN, a.stats.LastCommitTime = c.EndLSN, c.CommitTime
}
