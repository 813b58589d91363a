package apply

import (
	"context"
)

// inflight is a batch sent, COMMIT included, and not read back yet. Up
// to MaxInflight go one behind the other with no Sync between them, so the
// target finds the next batch waiting when it commits one. Only a batch of
// folded changes goes behind another: when a statement fails, the server
// skips everything up to the next Sync, so the failed batch's transaction
// is still open for the row-by-row fallback, and the batches behind it,
// which never began, are sent again from their plans. Anything else (row
// statements, a TRUNCATE, a catalog read, a wait for input or the gate)
// drains them first.
type inflight struct {
	batchEnd
	fold *fold    // its folded changes, for the fallback; nil when it had none
	plan foldPlan // its set-based statements, to send it again
	// alone: sent with a Sync, when nothing follows soon (caught up, a
	// pause, the end), so that reading it back also ends the pipeline, in
	// one round trip; nothing may go behind it.
	alone  bool
	lane   int  // the session it went to
	beside bool // committed by commitOnOtherLane: the next batch may start beside it
}

// beginBehindInflight queues the open batch's BEGIN behind the batches in
// flight, first settling the oldest while there are MaxInflight of them
// (all of them when the last one went alone). Call it only when nothing of
// the open batch is queued yet (needBegin).
func (tr *transport) beginBehindInflight(ctx context.Context) error {
	if tr.sentAlone() {
		if err := tr.drain(ctx); err != nil {
			return err
		}
	}
	for len(tr.inflight) >= tr.a.opts.MaxInflight {
		if err := tr.settleOldest(ctx); err != nil {
			return err
		}
	}
	if len(tr.inflight) > 0 {
		tr.snd.queueBehind()
	}
	tr.queueBegin(ctx)
	return nil
}

// sentAlone reports whether the last batch in flight went alone.
func (tr *transport) sentAlone() bool {
	n := len(tr.inflight)
	return n > 0 && tr.inflight[n-1].alone
}

// drain settles every batch in flight, oldest first, and then ends the
// pipeline of every session, so they are free for other statements.
func (tr *transport) drain(ctx context.Context) error {
	if len(tr.inflight) == 0 {
		return nil
	}
	if err := tr.settleAll(ctx); err != nil {
		return err
	}
	for _, l := range tr.lanes {
		if err := l.snd.flush(); err != nil {
			return err
		}
	}
	return nil
}

// settleAll settles every batch in flight, oldest first; the pipelines
// stay as they are.
func (tr *transport) settleAll(ctx context.Context) error {
	for len(tr.inflight) > 0 {
		if err := tr.settleOldest(ctx); err != nil {
			return err
		}
	}
	return nil
}

// settleOldest reads the results of the oldest batch in flight and
// settles it. When it failed, the server skipped the batches behind it:
// each is sent again, alone, and settled.
func (tr *transport) settleOldest(ctx context.Context) error {
	fl := tr.inflight[0]
	defer tr.useLane(tr.lane)
	tr.useLane(fl.lane)
	tr.inflight[0] = nil
	tr.inflight = tr.inflight[1:]
	err := tr.snd.readBatch()
	if err == nil {
		return tr.settleBatch(ctx, fl, nil)
	}
	skipped := tr.inflight
	tr.inflight = nil
	if err := tr.settleBatch(ctx, fl, err); err != nil {
		return err
	}
	for _, b := range skipped {
		tr.snd.control(ctx, "BEGIN", nil, nil, "begin target transaction", b.last.CommitLSN)
		tr.queueFold(ctx, b.plan)
		tr.queueCommit(ctx, b.batchEnd)
		if err := tr.settleBatch(ctx, b, tr.snd.flush()); err != nil {
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
func (tr *transport) settleBatch(ctx context.Context, fl *inflight, err error) error {
	if fl.fold != nil {
		var fellBack bool
		if fellBack, err = tr.settleFold(ctx, fl.fold, err); fellBack && err == nil {
			tr.queueCommit(ctx, fl.batchEnd)
			err = tr.snd.flush()
		}
		tr.spares = append(tr.spares, fl.fold)
	}
	if err != nil {
		return err
	}
	tr.report(fl.batchEnd, tr.snd.takeConflicts())
	tr.a.setLast(fl.last)
	if fl.durable && tr.a.opts.OnApplied != nil {
		tr.a.opts.OnApplied(fl.last.EndLSN)
	}
	return nil
}
