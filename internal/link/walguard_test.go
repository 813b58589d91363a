package link

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/status"
)

// TestWALGuard checks the WAL guard's threshold: half of the source's
// max_slot_wal_keep_size, or the one given; the live view and pglink
// status warn past it.
func TestWALGuard(t *testing.T) {
	old := walCheckInterval
	t.Cleanup(func() { walCheckInterval = old }) // after the link's stop, a later cleanup
	walCheckInterval = 200 * time.Millisecond
	src := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"max_slot_wal_keep_size": "64MB"}})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.items (id int PRIMARY KEY, v text)`,
		`INSERT INTO public.items SELECT g, 'v' || g FROM generate_series(1, 1000) g`)
	live := NewLive("wal")
	l := startTestLink(t, Config{Name: "wal", Source: src.URL("app"), Target: dst.URL("app"), Live: live})
	waitPhase(t, l, "replicating", time.Minute)
	waitFor(t, "the slot's WAL read", 30*time.Second, l, func() (bool, error) {
		return live.Snapshot().SlotRetainedBytes != nil, nil
	})
	if s := live.Snapshot(); s.WALWarnBytes != 32<<20 || s.WALWarning != "" {
		t.Errorf("live view: threshold %d, warning %q; want half of max_slot_wal_keep_size (32 MiB) and none", s.WALWarnBytes, s.WALWarning)
	}
	ctx := context.Background()
	st, err := status.ReadWAL(ctx, "wal", dst.URL("app"), src.URL("app"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.WALWarnBytes != 32<<20 || strings.Contains(strings.Join(st.Warnings, ";"), "retains") {
		t.Errorf("status: threshold %d, warnings %q", st.WALWarnBytes, st.Warnings)
	}
	st, err = status.ReadWAL(ctx, "wal", dst.URL("app"), src.URL("app"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if *st.SlotRetainedBytes > 1 && !strings.Contains(strings.Join(st.Warnings, ";"), "retains") {
		t.Errorf("status with --wal-warn 1: retained %d, warnings %q", *st.SlotRetainedBytes, st.Warnings)
	}
}
