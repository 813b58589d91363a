package link

import (
	"time"
)

const backoffMax = 30 * time.Second

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
