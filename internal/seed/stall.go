package seed

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/pglink/pglink/internal/endpoint"
)

// DefaultStallTimeout is how long a part's copy may move no byte before
// it is given up as silent. A network that drops packets without a reset
// leaves both sessions waiting for ever (keepalives answered by a middle
// box, a server that hangs); a healthy copy moves bytes every moment, and
// its slowest pauses (a checkpoint on the target, a lock wait of a second)
// are far shorter.
var DefaultStallTimeout = time.Minute

// flow counts the bytes of a part's copy as they move, and whether the
// source's side waits for the target to take them.
type flow struct {
	bytes   atomic.Int64
	writing atomic.Bool // COPY TO's write into the pipe has not returned
	srcDone atomic.Bool // the source sent the whole part
}

// watchStall cancels ctx (with an endpoint.SilentError as its cause) when
// f has not moved for timeout; the returned function stops the watch.
func watchStall(ctx context.Context, cancel context.CancelCauseFunc, f *flow, what string, timeout time.Duration) func() {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(max(timeout/10, 10*time.Millisecond))
		defer tick.Stop()
		last, since := f.bytes.Load(), time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case now := <-tick.C:
				if b := f.bytes.Load(); b != last {
					last, since = b, now
					continue
				}
				if now.Sub(since) < timeout {
					continue
				}
				// A source that waits for the pipe, or that is done, waits
				// for the target; otherwise the source sends nothing.
				side := endpoint.Source
				if f.writing.Load() || f.srcDone.Load() {
					side = endpoint.Target
				}
				cancel(&endpoint.SilentError{Side: side, What: what, Since: since, For: now.Sub(since)})
				return
			}
		}
	}()
	return func() { close(done) }
}

// stallCause returns the SilentError that ended ctx, if that is why err
// happened, and err otherwise.
func stallCause(ctx context.Context, err error) error {
	var se *endpoint.SilentError
	if err != nil && errors.As(context.Cause(ctx), &se) {
		return se
	}
	return err
}
