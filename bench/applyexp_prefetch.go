package main

import (
	"context"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// setBasedPrefetch measures what reading ahead on a second target session
// would gain: while the set-based prototype applies batch N on one
// session, another reads the accounts batch N+1 will update, through the
// key's index as the UPDATE finds them. The read brings their pages into
// shared buffers and prunes them there, work the applying session then
// skips. The batches stay atomic: the second session only reads.
func setBasedPrefetch(batchTxns int) func(context.Context, *pgx.Conn, string, []pgbenchTxn) error {
	return func(ctx context.Context, conn *pgx.Conn, origin string, txns []pgbenchTxn) error {
		reader, err := secondSession(ctx, conn, `SET enable_seqscan = off`)
		if err != nil {
			return err
		}
		defer reader.Close(context.Background())
		unbind, err := bindOrigin(ctx, conn, origin)
		if err != nil {
			return err
		}
		defer unbind()
		readAhead := func(ctx context.Context, batch []pgbenchTxn) error {
			aids := make([]int32, len(batch))
			for i, t := range batch {
				aids[i] = int32(t.aid)
			}
			_, err := reader.Exec(ctx, `SELECT count(*) FROM pgbench_accounts t, unnest($1::int[]) v(aid) WHERE t.aid = v.aid`, aids)
			return err
		}
		n := min(batchTxns, len(txns))
		if err := readAhead(ctx, txns[:n]); err != nil {
			return err
		}
		for len(txns) > 0 {
			n := min(batchTxns, len(txns))
			this, next := txns[:n], txns[n:]
			g, gctx := errgroup.WithContext(ctx)
			g.Go(func() error { return setBasedBatch(gctx, conn, this) })
			if len(next) > 0 {
				g.Go(func() error { return readAhead(gctx, next[:min(batchTxns, len(next))]) })
			}
			if err := g.Wait(); err != nil {
				return err
			}
			txns = next
		}
		return nil
	}
}
