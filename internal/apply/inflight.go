package apply

import (
	"context"
)

// Batches in flight: commitBatch sends a batch's statements and COMMIT
// without waiting for the results, and the apply goes on folding the next
// batch in memory while the target works. Up to MaxInflight batches go out
// one behind the other with no Sync between them (see sender), so the
// target finds the next batch waiting when it commits one. When a
// statement of a batch fails, the server skips everything behind it up to
// a Sync: that batch's transaction is still open and alone on the session,
// the fallback applies it row by row exactly as when it was not in flight,
// and the batches behind it, which never began, are sent again.
//
// A batch committed because the input has nothing more for now (caught
// up, a pause, the end) goes alone, ending with a Sync, so that reading it
// back also ends the pipeline, in one round trip; the next batch waits for
// it.
//
// Only a batch that is all folded changes (its BEGIN not queued before
// commitBatch) goes behind others: its statements can be sent again from
// its plan. Everything else (row statements, a TRUNCATE, a catalog read, a
// wait for input or for the gate) settles the batches in flight first.

// inflight is a batch sent but not yet read back.
type inflight struct {
	batchEnd
	fold   *fold    // its folded changes, for the fallback; nil when it had none
	plan   foldPlan // its set-based statements, to send it again
	alone  bool     // sent with a Sync: nothing may go behind it
	lane   int      // the session it went to (lanes.go)
	beside bool     // all folded changes, committed by commitBeside: the next batch may start beside it
}

// beginBehind queues the open batch's BEGIN behind the batches in flight,
// first settling the oldest while there are MaxInflight of them (all of
// them when the last one went alone). Call it only when nothing of the
// open batch is queued yet (needBegin).
func (r *run) beginBehind(ctx context.Context) error {
	if r.sentAlone() {
		if err := r.settleInflight(ctx); err != nil {
			return err
		}
	}
	for len(r.inflight) >= r.a.opts.MaxInflight {
		if err := r.settleOldest(ctx); err != nil {
			return err
		}
	}
	if len(r.inflight) > 0 {
		r.snd.queueBehind()
	}
	r.queueBegin(ctx)
	return nil
}

// sentAlone reports whether the last batch in flight went alone.
func (r *run) sentAlone() bool {
	n := len(r.inflight)
	return n > 0 && r.inflight[n-1].alone
}

// settleInflight settles every batch in flight, oldest first, and then
// ends the pipeline of every session, so they are free for other
// statements.
func (r *run) settleInflight(ctx context.Context) error {
	if len(r.inflight) == 0 {
		return nil
	}
	if err := r.settleBatches(ctx); err != nil {
		return err
	}
	for _, l := range r.lanes {
		if err := l.snd.flush(); err != nil {
			return err
		}
	}
	return nil
}

// settleBatches settles every batch in flight, oldest first; the
// pipelines stay as they are.
func (r *run) settleBatches(ctx context.Context) error {
	for len(r.inflight) > 0 {
		if err := r.settleOldest(ctx); err != nil {
			return err
		}
	}
	return nil
}

// settleOldest reads the results of the oldest batch in flight and
// settles it. When it failed, the server skipped the batches behind it:
// each is sent again, alone, and settled.
func (r *run) settleOldest(ctx context.Context) error {
	fl := r.inflight[0]
	defer r.useLane(r.lane)
	r.useLane(fl.lane)
	r.inflight[0] = nil
	r.inflight = r.inflight[1:]
	err := r.snd.readBatch()
	if err == nil {
		return r.settleBatch(ctx, fl, nil)
	}
	skipped := r.inflight
	r.inflight = nil
	if err := r.settleBatch(ctx, fl, err); err != nil {
		return err
	}
	for _, b := range skipped {
		r.snd.control(ctx, "BEGIN", nil, nil, "begin target transaction", b.last.CommitLSN)
		r.queueFold(ctx, b.plan)
		r.queueCommit(ctx, b.batchEnd)
		if err := r.settleBatch(ctx, b, r.snd.flush()); err != nil {
			return err
		}
	}
	return nil
}

// settleBatch settles a batch whose results were read, with err their
// first error. When its set-based statements failed (the server then
// skipped its COMMIT), it applies the batch's folded changes row by row
// and commits it again. Then it reports the batch as applied, and as
// durable when its COMMIT waited for the WAL flush (which makes every
// earlier batch durable too).
func (r *run) settleBatch(ctx context.Context, fl *inflight, err error) error {
	if fl.fold != nil {
		var fellBack bool
		if fellBack, err = r.settle(ctx, fl.fold, err); fellBack && err == nil {
			r.queueCommit(ctx, fl.batchEnd)
			err = r.snd.flush()
		}
		r.spares = append(r.spares, fl.fold)
	}
	if err != nil {
		return err
	}
	r.addStats(fl.txns, fl.rows, r.snd.takeConflicts())
	r.a.setLast(fl.last)
	if fl.durable && r.a.opts.OnApplied != nil {
		r.a.opts.OnApplied(fl.last.EndLSN)
	}
	return nil
}
