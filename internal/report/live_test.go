package report

import (
	"strings"
	"testing"
)

func TestWALWarnThreshold(t *testing.T) {
	for _, tc := range []struct{ keep, override, want int64 }{
		{-1, 0, DefaultWALWarnBytes},
		{0, 0, DefaultWALWarnBytes},
		{10 << 30, 0, 5 << 30},
		{10 << 30, 1 << 20, 1 << 20},
		{-1, 3 << 30, 3 << 30},
	} {
		if got := WALWarnThreshold(tc.keep, tc.override); got != tc.want {
			t.Errorf("WALWarnThreshold(%d, %d) = %d, want %d", tc.keep, tc.override, got, tc.want)
		}
	}
	if w := WALWarning("pglink_a", 100, 100); w != "" {
		t.Errorf("warning at the threshold: %q", w)
	}
	if w := WALWarning("pglink_a", 3<<30, 1<<30); !strings.Contains(w, "3072 MiB") || !strings.Contains(w, "pglink_a") {
		t.Errorf("warning: %q", w)
	}
}
