package apply

import (
	"context"
	"fmt"
	"time"

	"github.com/pglink/pglink/internal/change"
)

// loop follows the source's transactions and decides where target batches
// end: many source transactions share one batch through a backlog, for
// throughput, and a caught-up one commits at once, for lag. It is the only
// one to read the input and know the source transaction; the planner and
// the transport see changes and batches only.
type loop struct {
	a      *Applier
	origin change.LSN // source transactions that commit before this are already applied
	plan   *planner
	tr     *transport

	peeked   *change.Change // taken from the input to see whether more is waiting
	inClosed bool

	inTxn, skipTxn bool
	txnAt          change.LSN // CommitLSN of the open source transaction

	batchOpen  bool
	batchStart time.Time
	batchTxns  int64
	batchRows  int64
	batchKinds kindCounts
	lastCommit *change.Change
	skipped    int64 // not yet added to Stats
	skipTxns   int64
	// schemaTxn is set when the open source transaction changed the
	// target's schema: its batch commits at its commit.
	schemaTxn bool

	shape shape // the row change's shape: rowChange's scratch
}

func (l *loop) run(ctx context.Context, in <-chan *change.Change) error {
	for {
		c, ok, err := l.next(ctx, in)
		if err != nil {
			return err
		}
		if !ok {
			return l.inputClosed(ctx)
		}
		if err := l.handle(ctx, c, in); err != nil {
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
func (l *loop) next(ctx context.Context, in <-chan *change.Change) (*change.Change, bool, error) {
	if ctx.Err() != nil {
		return nil, false, ctx.Err()
	}
	if !l.waiting(in) && l.tr.snd.unsent() == 0 && !l.tr.sentAlone() && l.moreComing(l.origin) {
		l.waitInput(ctx, in, l.a.opts.MaxBatchDelay)
	}
	if c := l.peeked; c != nil {
		l.peeked = nil
		return c, true, nil
	}
	if l.inClosed {
		return nil, false, nil
	}
	if err := l.tr.drain(ctx); err != nil {
		return nil, false, err
	}
	if err := l.tr.snd.flush(); err != nil {
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
func (l *loop) waiting(in <-chan *change.Change) bool {
	return l.waitInput(context.Background(), in, 0)
}

func (l *loop) handle(ctx context.Context, c *change.Change, in <-chan *change.Change) error {
	switch c.Kind {
	case change.Begin:
		return l.begin(ctx, c)
	case change.Commit:
		return l.commit(ctx, c, in)
	case change.Insert, change.Update, change.Delete:
		if !l.inTxn {
			return fmt.Errorf("%s at source %s outside a source transaction", c.Kind, c.CommitLSN)
		}
		return l.rowChange(ctx, c)
	case change.Truncate:
		if !l.inTxn {
			return fmt.Errorf("TRUNCATE at source %s outside a source transaction", c.CommitLSN)
		}
		return l.truncate(ctx, c)
	case change.Message:
		// A message with nothing to apply still has its transaction
		// commit and move the origin.
		return l.message(ctx, c)
	}
	return fmt.Errorf("unknown change %s at source %s", c.Kind, c.CommitLSN)
}

// begin opens a source transaction. One whose commit lies before the
// origin's position was applied already (the server may send it again
// after a restart: it starts from the slot's confirmed position, which can
// be behind the target's), and is skipped whole.
func (l *loop) begin(ctx context.Context, c *change.Change) error {
	if l.inTxn {
		return fmt.Errorf("BEGIN at source %s inside the source transaction at %s", c.CommitLSN, l.txnAt)
	}
	if c.CommitLSN >= l.origin {
		if err := l.hold(ctx, c.CommitLSN); err != nil {
			return err
		}
	}
	l.inTxn, l.txnAt = true, c.CommitLSN
	l.skipTxn = c.CommitLSN < l.origin
	if l.skipTxn {
		l.a.log.Debug("apply: source transaction already applied, skipped", "commit_lsn", c.CommitLSN.String(), "origin", l.origin.String())
	}
	if l.skipTxn || l.batchOpen {
		return nil
	}
	l.tr.openBatch(c.CommitLSN)
	l.batchOpen, l.batchStart = true, time.Now()
	return nil
}

// hold waits, between two source transactions, while the gate holds the
// apply before the one at commitLSN; what was applied before is committed
// first, so the target shows exactly the transactions before it.
func (l *loop) hold(ctx context.Context, commitLSN change.LSN) error {
	g := l.a.opts.Gate
	for g != nil && g.Holding(commitLSN) {
		if l.batchOpen {
			if err := l.commitBatch(ctx, true, true); err != nil {
				return err
			}
		}
		if err := l.tr.drain(ctx); err != nil {
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
func (l *loop) commit(ctx context.Context, c *change.Change, in <-chan *change.Change) error {
	if !l.inTxn {
		return fmt.Errorf("COMMIT at source %s without BEGIN", c.CommitLSN)
	}
	l.inTxn = false
	if l.skipTxn {
		l.skipTxns++
		if !l.batchOpen {
			l.addStats(batchEnd{}, 0)
		}
		return nil
	}
	l.batchTxns++
	l.lastCommit = c
	l.origin = max(l.origin, c.EndLSN)
	if l.schemaTxn {
		l.schemaTxn = false
		return l.commitBatch(ctx, true, true)
	}
	more := l.waiting(in)
	if !more && l.moreComing(c.EndLSN) {
		more = l.waitInput(ctx, in, l.a.opts.MaxBatchDelay-time.Since(l.batchStart))
	}
	if !more || l.batchTxns >= int64(l.a.opts.MaxBatchTxns) || time.Since(l.batchStart) >= l.a.opts.MaxBatchDelay {
		return l.commitBatch(ctx, !more || time.Since(l.tr.lastDurable) >= l.a.opts.DurableEvery, !more)
	}
	return nil
}

// moreComing reports whether the source has a transaction for the stream
// after position end (see Options.SourceAhead).
func (l *loop) moreComing(end change.LSN) bool {
	return l.a.opts.SourceAhead != nil && end <= l.a.opts.SourceAhead()
}

// waitInput waits up to d (not at all when d <= 0) for the next change,
// keeping it for next, and reports whether one came.
func (l *loop) waitInput(ctx context.Context, in <-chan *change.Change, d time.Duration) bool {
	if l.peeked != nil {
		return true
	}
	if l.inClosed {
		return false
	}
	select {
	case c, ok := <-in:
		return l.keep(c, ok)
	default:
	}
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case c, ok := <-in:
		return l.keep(c, ok)
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// keep keeps a change received from the input for next, or notes that the
// input is closed.
func (l *loop) keep(c *change.Change, ok bool) bool {
	if !ok {
		l.inClosed = true
		return false
	}
	l.peeked = c
	return true
}

// inputClosed commits the complete source transactions of the open batch.
// A source transaction cut off by the close cannot be committed: the whole
// batch is rolled back, and the origin, which did not move, makes the
// source send it again.
func (l *loop) inputClosed(ctx context.Context) error {
	if l.inTxn && !l.skipTxn {
		return fmt.Errorf("%w (at source %s): target transaction rolled back", ErrIncompleteTransaction, l.txnAt)
	}
	if l.batchOpen {
		if err := l.commitBatch(ctx, true, true); err != nil {
			return err
		}
	}
	return l.tr.drain(ctx)
}

// commitBatch commits the open batch (see transport.commit).
func (l *loop) commitBatch(ctx context.Context, durable, alone bool) error {
	end := batchEnd{last: l.lastCommit, txns: l.batchTxns, rows: l.batchRows, kinds: l.batchKinds, durable: durable}
	l.batchOpen = false
	l.batchTxns, l.batchRows, l.batchKinds, l.lastCommit = 0, 0, kindCounts{}, nil
	return l.tr.commit(ctx, end, alone)
}

// addStats adds to the Applier's counters, with the skipped changes
// counted since the last call.
func (l *loop) addStats(end batchEnd, conflicts int64) {
	l.a.addStats(Stats{Txns: end.txns, Changes: end.rows, Inserts: end.kinds[0], Updates: end.kinds[1],
		Deletes: end.kinds[2], Truncates: end.kinds[3], Conflicts: conflicts, Skipped: l.skipped, SkippedTxns: l.skipTxns})
	l.skipped, l.skipTxns = 0, 0
}
