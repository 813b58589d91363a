package link

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/state"
)

// refreshMatViews fills the materialized views once seeding is done, in a
// session of its own, while the link already replicates: they are created
// empty, and cannot be read until refreshed. The result goes to
// pglink.history (event matviews_refreshed); a failure is logged and
// recorded there too, and does not stop the link: a planned failover
// refreshes them again before the target opens.
func (r *runner) refreshMatViews(ctx context.Context) {
	start := time.Now()
	conn, err := r.tgt.Connect(ctx)
	if err != nil {
		r.log.Warn("could not refresh the materialized views", "error", err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	done, err := state.RefreshMatViews(ctx, conn, r.cfg.Name)
	if ctx.Err() != nil || err == nil && len(done) == 0 {
		return
	}
	elapsed := time.Since(start).Round(time.Millisecond)
	detail := fmt.Sprintf("%d materialized views in %s: %s", len(done), elapsed, strings.Join(done, ", "))
	if err != nil {
		detail += "; then failed: " + err.Error()
		r.log.Warn("could not refresh every materialized view; a planned failover refreshes them again", "refreshed", len(done), "error", err)
	} else {
		r.log.Info("materialized views refreshed", "views", len(done), "elapsed", elapsed)
	}
	if err := state.AddHistory(ctx, conn, r.cfg.Name, state.EventMatViews, detail); err != nil && ctx.Err() == nil {
		r.log.Warn("could not record the refresh of the materialized views", "error", err)
	}
}
