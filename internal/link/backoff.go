package link

import (
	"context"
	"time"
)

const (
	backoffStep = 250 * time.Millisecond
	backoffMax  = 30 * time.Second
)

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// nextBackoff doubles d, from one second up to backoffMax.
func nextBackoff(d time.Duration) time.Duration {
	if d < time.Second {
		return time.Second
	}
	if d *= 2; d > backoffMax {
		return backoffMax
	}
	return d
}
