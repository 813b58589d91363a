package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/pglink/pglink/internal/apply"
)

// setBasedOrdered measures applying consecutive batches on two target
// sessions with commits in order: batch i runs on session i%2; its
// history and the accounts batch i-1 does not touch go at once, while
// batch i-1 may still run on the other session; its other accounts, its
// tellers and branches (rows every batch touches), its origin and its
// COMMIT only once batch i-1 has committed, as pglink's apply does
// (internal/apply/lanes.go). Each batch stays one transaction and the
// target sees them commit in source order. (An account of batch i-1
// updated at once could be locked by batch i first: batch i-1 would wait
// for batch i, which waits for batch i-1's commit.)
func setBasedOrdered(batchTxns int) func(context.Context, *pgx.Conn, string, []pgbenchTxn) error {
	return func(ctx context.Context, conn *pgx.Conn, origin string, txns []pgbenchTxn) error {
		other, err := secondSession(ctx, conn, `SET session_replication_role = replica`)
		if err != nil {
			return err
		}
		defer other.Close(context.Background())
		origin2 := origin + "_b"
		if err := apply.EnsureOrigin(ctx, other, origin2); err != nil {
			return err
		}
		defer other.Exec(context.WithoutCancel(ctx), `SELECT pg_replication_origin_drop($1)`, origin2)
		unbind, err := bindOrigin(ctx, conn, origin)
		if err != nil {
			return err
		}
		defer unbind()
		unbind2, err := bindOrigin(ctx, other, origin2)
		if err != nil {
			return err
		}
		defer unbind2()
		var batches [][]pgbenchTxn
		for len(txns) > 0 {
			n := min(batchTxns, len(txns))
			batches = append(batches, txns[:n])
			txns = txns[n:]
		}
		done := make([]chan struct{}, len(batches))
		for i := range done {
			done[i] = make(chan struct{})
		}
		sessions := [2]*pgx.Conn{conn, other}
		g, gctx := errgroup.WithContext(ctx)
		for s := range 2 {
			g.Go(func() error {
				c := sessions[s]
				for i := s; i < len(batches); i += 2 {
					b := batches[i]
					var free, after []pgbenchTxn
					if i > 0 {
						prev := map[int]bool{}
						for _, t := range batches[i-1] {
							prev[t.aid] = true
						}
						for _, t := range b {
							if prev[t.aid] {
								after = append(after, t)
							} else {
								free = append(free, t)
							}
						}
					} else {
						free = b
					}
					first := &pgx.Batch{}
					first.Queue(`BEGIN`)
					queueAccounts(first, free)
					queueHistory(first, b)
					if err := c.SendBatch(gctx, first).Close(); err != nil {
						return fmt.Errorf("batch %d: %w", i, err)
					}
					if i > 0 {
						select {
						case <-done[i-1]:
						case <-gctx.Done():
							return gctx.Err()
						}
					}
					second := &pgx.Batch{}
					if len(after) > 0 {
						queueAccounts(second, after)
					}
					queueHotRows(second, b)
					queueOrigin(second, b)
					second.Queue(`COMMIT`)
					if err := c.SendBatch(gctx, second).Close(); err != nil {
						return fmt.Errorf("batch %d: %w", i, err)
					}
					close(done[i])
				}
				return nil
			})
		}
		return g.Wait()
	}
}
