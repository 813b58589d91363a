package state

import (
	"context"
	"time"

	"github.com/pglink/pglink/internal/endpoint"
)

// ControlTimeout bounds each control query of a running link (heartbeat,
// status report, pause poll, phase and error records, pings): each is a
// small read or write of one row, so a server that has not answered one
// in this long is taken for gone (a network that drops packets, a server
// that hangs), and the link connects again. Tests shorten it.
var ControlTimeout = 20 * time.Second

// ControlQuery runs f with a deadline of ControlTimeout. A deadline that
// passes, and not ctx's end, becomes an endpoint.SilentError naming side
// and what waited: a lost connection, retried.
func ControlQuery(ctx context.Context, side endpoint.Side, what string, f func(context.Context) error) error {
	start := time.Now()
	qctx, cancel := context.WithTimeout(ctx, ControlTimeout)
	defer cancel()
	err := f(qctx)
	if err != nil && ctx.Err() == nil && qctx.Err() != nil {
		return &endpoint.SilentError{Side: side, What: what, Since: start, For: time.Since(start)}
	}
	return err
}
