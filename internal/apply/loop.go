package apply

import (
	"context"
	"fmt"
	"time"

	"github.com/pglink/pglink/internal/change"
)

// run is the state of one Run: the mapped tables with their prepared
// statements, the open source transaction and the open target batch.
type run struct {
	a      *Applier
	origin change.LSN // source transactions that commit before this are already applied
	plan   *planner   // the tables and their statements
	tr     *transport // the target sessions

	peeked   *change.Change // taken from the input to see whether more is waiting
	inClosed bool

	inTxn, skipTxn bool
	txnAt          change.LSN // CommitLSN of the open source transaction

	batchOpen  bool
	batchStart time.Time
	batchTxns  int64
	batchRows  int64
	lastCommit *change.Change
	skipped    int64 // not yet added to Stats
	skipTxns   int64

	shape shape
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
	if !r.waiting(in) && r.tr.snd.unsent() == 0 && !r.tr.sentAlone() && r.moreComing(r.origin) {
		r.waitInput(ctx, in, r.a.opts.MaxBatchDelay)
	}
	if c := r.peeked; c != nil {
		r.peeked = nil
		return c, true, nil
	}
	if r.inClosed {
		return nil, false, nil
	}
	if err := r.tr.settleInflight(ctx); err != nil {
		return nil, false, err
	}
	if err := r.tr.snd.flush(); err != nil {
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
	r.tr.openBatch(c.CommitLSN)
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
		if err := r.tr.settleInflight(ctx); err != nil {
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
		return r.commitBatch(ctx, !more || time.Since(r.tr.lastDurable) >= r.a.opts.DurableEvery, !more)
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
	return r.tr.settleInflight(ctx)
}

// commitBatch commits the open batch (see transport.commit).
func (r *run) commitBatch(ctx context.Context, durable, alone bool) error {
	end := batchEnd{last: r.lastCommit, txns: r.batchTxns, rows: r.batchRows, durable: durable}
	r.batchOpen = false
	r.batchTxns, r.batchRows, r.lastCommit = 0, 0, nil
	return r.tr.commit(ctx, end, alone)
}

// addStats adds to the Applier's counters, with the skipped changes
// counted since the last call.
func (r *run) addStats(txns, rows, conflicts int64) {
	r.a.addStats(Stats{Txns: txns, Changes: rows, Conflicts: conflicts, Skipped: r.skipped, SkippedTxns: r.skipTxns})
	r.skipped, r.skipTxns = 0, 0
}
