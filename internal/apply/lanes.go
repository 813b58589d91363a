package apply

import (
	"context"
	"time"
)

// Two sessions. With Options.Second, consecutive batches that are all
// folded changes go to the two target sessions (lanes) in turn, so the
// target works on two batches at once: while one session still applies
// batch N, the other starts batch N+1. The target still sees the batches
// commit one at a time, in source order, each whole:
//
//   - Batch N+1 begins at once with the rows batch N cannot meet: tables N
//     does not touch, and keys N does not touch of tables whose rows of
//     different keys never conflict (ownKeys). Those rows are the same
//     before and after N, and N never waits for them: N's rows, its
//     fallback's included, are all keys of N.
//   - The rest of N+1 (keys N touches, tables whose unique indexes could
//     make other keys collide), its origin, its progress row and its
//     COMMIT go only once N has committed.
//
// A batch with anything else (row statements, a TRUNCATE, a catalog read)
// first settles every batch in flight, on both sessions, as with one
// session. Each session has its own replication origin; the position is
// the furthest of them (OriginProgress), since commits are in order.

// commitOnOtherLane commits the open batch, all folded changes, on the lane
// the batch in flight (if any) does not use: it begins with the rows the
// batch in flight cannot meet, settles that batch, and then sends the
// rest and the COMMIT (see above). The batch is left in flight.
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
