package main

import (
	"context"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// setBasedTwoSessions measures what applying a batch on two target
// sessions at once would gain: the set-based prototype with each batch cut
// in two by account key, the halves applied at the same time, one of them
// with the tellers, branches and the origin's progress. Each half commits
// on its own, so a batch is not atomic here: pglink would need an atomic
// commit across the sessions (two-phase commit). This is throughput only.
func setBasedTwoSessions(batchTxns int) func(context.Context, *pgx.Conn, string, []pgbenchTxn) error {
	return func(ctx context.Context, conn *pgx.Conn, origin string, txns []pgbenchTxn) error {
		other, err := secondSession(ctx, conn, `SET session_replication_role = replica`)
		if err != nil {
			return err
		}
		defer other.Close(context.Background())
		unbind, err := bindOrigin(ctx, conn, origin)
		if err != nil {
			return err
		}
		defer unbind()
		for len(txns) > 0 {
			n := min(batchTxns, len(txns))
			all := txns[:n]
			var even, odd []pgbenchTxn
			for _, t := range all {
				if t.aid%2 == 0 {
					even = append(even, t)
				} else {
					odd = append(odd, t)
				}
			}
			first, second := prototypeBatch(even, all), prototypeBatch(odd, nil)
			g, gctx := errgroup.WithContext(ctx)
			g.Go(func() error { return conn.SendBatch(gctx, first).Close() })
			g.Go(func() error { return other.SendBatch(gctx, second).Close() })
			if err := g.Wait(); err != nil {
				return err
			}
			txns = txns[n:]
		}
		return nil
	}
}
