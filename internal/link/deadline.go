package link

import (
	"context"
	"time"

	"github.com/pglink/pglink/internal/endpoint"
)

// controlTimeout bounds each control query of a running link (heartbeat,
// status report, pause poll, phase and error records, pings): each is a
// small read or write of one row, so a server that has not answered one
// in this long is taken for gone (a network that drops packets, a server
// that hangs), and the link connects again. Tests shorten it.
var controlTimeout = 20 * time.Second

// controlQuery runs f with a deadline of controlTimeout. A deadline that
// passes, and not ctx's end, becomes an endpoint.SilentError naming side
// and what waited: a lost connection, retried.
func controlQuery(ctx context.Context, side endpoint.Side, what string, f func(context.Context) error) error {
	start := time.Now()
	qctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	err := f(qctx)
	if err != nil && ctx.Err() == nil && qctx.Err() != nil {
		return &endpoint.SilentError{Side: side, What: what, Since: start, For: time.Since(start)}
	}
	return err
}
