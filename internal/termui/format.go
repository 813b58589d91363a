// Package termui draws pglink's output for people: progress bars of the
// seeding copy jobs on a terminal, periodic log lines when the output is
// not a terminal, and the status report of a link.
package termui

import (
	"fmt"
	"math"
	"time"
)

// Bytes formats n bytes with a binary unit: 512 B, 1.5 KiB, 3.2 GiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	v, exp := float64(n), 0
	for math.Abs(v) >= unit && exp < 6 {
		v /= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp-1])
}

// Count formats n with thousands separators: 1,234,567.
func Count(n int64) string {
	s := fmt.Sprint(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// Duration formats d to the second, or tenths below ten seconds: 4.2s, 3m05s, 2h10m.
func Duration(d time.Duration) string {
	switch {
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		s := int(d.Round(time.Second).Seconds())
		if s < 60 {
			return fmt.Sprintf("%ds", s)
		}
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		m := int(d.Round(time.Minute).Minutes())
		return fmt.Sprintf("%dh%02dm", m/60, m%60)
	}
}

// rate returns bytes per second, 0 before any time has passed.
func rate(bytes int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(bytes) / elapsed.Seconds()
}

// eta estimates the time left from the rate so far; ok is false when it
// cannot be known (no estimate of the size, or nothing copied yet).
func eta(done, total int64, elapsed time.Duration) (time.Duration, bool) {
	r := rate(done, elapsed)
	if total <= 0 || r <= 0 {
		return 0, false
	}
	left := max(total-done, 0)
	return time.Duration(float64(left) / r * float64(time.Second)), true
}
