package link

import (
	"context"
	"fmt"
	"time"

	"github.com/pglink/pglink/internal/state"
)

// analyzeCopied gathers the planner's statistics for the target's copies
// of the link's tables, once, right after seeding, while the link already
// replicates: a copy starts without them, and a database restored without
// statistics plans its queries blind until autovacuum gets to each table
// (or never, where autovacuum is off). It runs on a session of its own;
// ANALYZE takes a lock that the apply's writes do not conflict with. A
// failure is only logged: autovacuum analyzes the tables in time anyway.
func (r *runner) analyzeCopied(ctx context.Context) {
	start := time.Now()
	conn, err := r.tgt.Connect(ctx)
	if err != nil {
		r.log.Warn("could not analyze the copied tables; autovacuum will", "error", err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	analyzed := 0
	for _, t := range r.tables {
		if _, err := conn.Exec(ctx, "ANALYZE "+t.QualifiedName()); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("could not analyze a copied table; autovacuum will", "table", t.Key(), "error", err)
			continue
		}
		analyzed++
	}
	elapsed := time.Since(start).Round(time.Millisecond)
	r.log.Info("copied tables analyzed", "tables", analyzed, "elapsed", elapsed)
	detail := fmt.Sprintf("%d of %d tables in %s", analyzed, len(r.tables), elapsed)
	if err := state.AddHistory(ctx, conn, r.cfg.Name, state.EventAnalyzed, detail); err != nil && ctx.Err() == nil {
		r.log.Warn("could not record the analyze", "error", err)
	}
}

// analyzeInBackground starts analyzeCopied, then refreshMatViews (whose
// queries get the statistics); stop cancels them and waits for them to
// end.
func (r *runner) analyzeInBackground(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.analyzeCopied(ctx)
		r.refreshMatViews(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}
