package apply

import (
	"context"
)

// One batch in flight: commitBatch sends a batch's statements and COMMIT
// without waiting for the results, and the apply goes on folding the next
// batch in memory while the target works. Nothing more is sent until the
// results are read (settleInflight): the next batch's BEGIN waits for its
// first statement (ensureBegun), and every other send, wait or catalog
// read settles first. So when a set-based statement of the batch in
// flight fails, its transaction is still open and alone on the session,
// and the fallback applies it row by row exactly as when it was not in
// flight.

// inflight is a batch sent but not yet read back.
type inflight struct {
	batchEnd
	fold *fold // its folded changes, for the fallback; nil when it had none
}

// ensureBegun settles the batch in flight and queues the open batch's
// BEGIN when it is not queued yet: call it before queuing anything for the
// open batch.
func (r *run) ensureBegun(ctx context.Context) error {
	if err := r.settleInflight(ctx); err != nil {
		return err
	}
	if r.needBegin {
		r.snd.control(ctx, "BEGIN", nil, nil, "begin target transaction", r.beginAt)
		r.needBegin = false
	}
	return nil
}

// settleInflight reads the results of the batch in flight. When its
// set-based statements failed (the server then skipped its COMMIT), it
// applies the batch's folded changes row by row and commits it again.
// Then it reports the batch as applied, and as durable when its COMMIT
// waited for the WAL flush (which makes every earlier batch durable too).
func (r *run) settleInflight(ctx context.Context) error {
	fl := r.inflight
	if fl == nil {
		return nil
	}
	r.inflight = nil
	err := r.snd.flush()
	if fl.fold != nil {
		var fellBack bool
		if fellBack, err = r.settle(ctx, fl.fold, err); fellBack && err == nil {
			r.queueCommit(ctx, fl.batchEnd)
			err = r.snd.flush()
		}
		r.spare = fl.fold
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
