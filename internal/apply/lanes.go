package apply

import (
	"context"
	"time"
)

// commitOnOtherLane commits the open batch, all folded changes, on the
// lane the batch in flight does not use, and leaves it in flight. It
// begins at once with the rows that batch cannot meet (planFoldBeside):
// they are the same before and after it, and it never waits for them, as
// its rows, its fallback's included, are all of its own keys; so the two
// sessions cannot deadlock. The rest, the origin's position and the COMMIT
// go once that batch has committed, so the target still sees the batches
// commit one at a time, in source order, each whole.
func (tr *transport) commitOnOtherLane(ctx context.Context, end batchEnd, alone bool) error {
	var prev *inflight
	if n := len(tr.inflight); n > 0 {
		prev = tr.inflight[n-1]
		if prev.alone || !prev.beside || len(tr.inflight) > 1 {
			if err := tr.drain(ctx); err != nil {
				return err
			}
			prev = nil
		}
	}
	var free, after foldPlan
	if prev != nil && prev.fold != nil {
		free, after = tr.plan.planFoldBeside(tr.fold, prev.fold)
	} else {
		free = tr.plan.planFold(tr.fold)
	}
	if prev != nil {
		tr.useLane(1 - prev.lane)
	}
	if end.durable {
		tr.lastDurable = time.Now()
	}
	folded := free.folded
	tr.queueBegin(ctx)
	if folded {
		tr.snd.control(ctx, "SAVEPOINT "+bulkSavepoint, nil, nil, "take a savepoint before set-based statements", free.at)
		tr.queueBulks(ctx, free)
	}
	if prev != nil {
		if err := tr.snd.sendPart(); err != nil {
			return err
		}
		if err := tr.settleOtherLane(ctx); err != nil {
			return err
		}
		tr.queueBulks(ctx, after)
	}
	if folded {
		tr.snd.control(ctx, "RELEASE SAVEPOINT "+bulkSavepoint, nil, nil, "release the savepoint of set-based statements", free.at)
	}
	tr.queueCommit(ctx, end)
	if err := tr.snd.sendBatch(alone); err != nil {
		return err
	}
	fl := &inflight{batchEnd: end, alone: alone, lane: tr.lane, beside: true}
	if folded {
		fl.fold = tr.takeFold()
	}
	tr.inflight = append(tr.inflight, fl)
	return nil
}

// settleOtherLane settles the batches in flight, which are all on the other
// lane, and ends that lane's pipeline; the current lane's, which carries
// the first part of the open batch, stays as it is.
func (tr *transport) settleOtherLane(ctx context.Context) error {
	if err := tr.settleAll(ctx); err != nil {
		return err
	}
	return tr.lanes[1-tr.lane].snd.flush()
}
