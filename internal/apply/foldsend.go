package apply

import (
	"context"
	"errors"

	"github.com/pglink/pglink/internal/change"
)

// flushFold applies the folded changes now (see queueFold and settleFold).
func (tr *transport) flushFold(ctx context.Context) error {
	if tr.fold.empty() {
		return nil
	}
	plan := tr.plan.planFold(tr.fold)
	if err := tr.ensureBegun(ctx); err != nil {
		return err
	}
	tr.queueFold(ctx, plan)
	_, err := tr.settleFold(ctx, tr.fold, tr.snd.flush())
	return err
}

// queueFold queues the set-based statements of a fold, as planFold
// planned them, behind a savepoint, and reports whether the fold held
// anything. The fold is kept until settleFold has seen the results.
func (tr *transport) queueFold(ctx context.Context, plan foldPlan) bool {
	if !plan.folded {
		return false
	}
	at := plan.at
	tr.snd.control(ctx, "SAVEPOINT "+bulkSavepoint, nil, nil, "take a savepoint before set-based statements", at)
	tr.queueBulks(ctx, plan)
	tr.snd.control(ctx, "RELEASE SAVEPOINT "+bulkSavepoint, nil, nil, "release the savepoint of set-based statements", at)
	return true
}

// queueBulks queues the planned set-based statements.
func (tr *transport) queueBulks(ctx context.Context, plan foldPlan) {
	for i := range plan.reqs {
		tr.queueBulk(ctx, &plan.reqs[i], plan.at)
	}
}

// settleFold empties fold f after the flush that carried its statements.
// When a set-based statement failed (the server then skipped the rest up
// to the flush's end), it rolls back to the savepoint, queues the same
// changes one by one and reports fellBack: what the flush carried after
// the fold must be queued again. Any other error is returned as is.
func (tr *transport) settleFold(ctx context.Context, f *fold, flushErr error) (fellBack bool, err error) {
	defer f.reset()
	var be *bulkError
	if flushErr == nil || !errors.As(flushErr, &be) {
		return false, flushErr
	}
	if be.prep != "" {
		delete(be.tbl.bulk, be.prep)
		be.tbl.foldable = false // the statement cannot be prepared: apply this table row by row from now on
	}
	at := f.changes[len(f.changes)-1].c.CommitLSN
	tr.a.log.Debug("apply: set-based statements failed, applying their changes one by one",
		"table", be.tbl.quoted, "changes", len(f.changes), "reason", be.err.Error(), "source_lsn", at.String())
	tr.a.mu.Lock()
	tr.a.stats.Fallbacks++
	tr.a.mu.Unlock()
	tr.snd.control(ctx, "ROLLBACK TO SAVEPOINT "+bulkSavepoint, nil, nil, "roll back set-based statements", at)
	tr.snd.control(ctx, "RELEASE SAVEPOINT "+bulkSavepoint, nil, nil, "release the savepoint of set-based statements", at)
	for _, fc := range f.changes {
		if err := tr.rowStatement(ctx, fc.t, fc.c, &fc.shape, fc.where); err != nil {
			return true, err
		}
	}
	return true, nil
}

// queueBulk queues one planned set-based statement, preparing it at
// first use.
func (tr *transport) queueBulk(ctx context.Context, req *bulkReq, at change.LSN) {
	t := req.t
	st, key, fresh := tr.plan.bulkStmt(tr.lane, req)
	if fresh {
		tr.snd.prepareBulk(ctx, t, st, key, at)
	}
	tr.snd.bulk(ctx, t, st, req.op, req.args, req.fmts, at)
}
