package link

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestSlotInvalidated stops a link, lets the source write more WAL than
// max_slot_wal_keep_size lets the slot hold, and checkpoints: the slot is
// invalidated (wal_status lost). The next start must stop with that and
// its remedy (drop the link and seed again) instead of retrying for ever,
// and pglink status must say the same.
func TestSlotInvalidated(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"max_slot_wal_keep_size": "'1MB'"}})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id int PRIMARY KEY, v text)`, `INSERT INTO public.t VALUES (1, 'one')`)
	cfg := Config{Name: "lost", Source: src.URL("app"), Target: dst.URL("app")}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}

	// Each round writes a little and moves to a new 16MB segment; the
	// checkpoint then removes the segments the slot still needs.
	warned := false
	for deadline := time.Now().Add(time.Minute); ; {
		for i := 0; i < 4; i++ {
			src.Exec("app", `INSERT INTO public.t SELECT coalesce(max(id), 0) + 1, 'more' FROM public.t`, `SELECT pg_switch_wal()`)
		}
		// Before the checkpoint the slot is past its limit but whole:
		// status warns while the link can still catch up.
		if !warned && src.QueryString("app", `SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'pglink_lost'`) == "unreserved" {
			st := linkStatus(t, "lost", cfg.Target, cfg.Source)
			if w := strings.Join(st.Warnings, "\n"); !strings.Contains(w, "unreserved") || !strings.Contains(w, "max_slot_wal_keep_size") {
				t.Errorf("status of a slot past max_slot_wal_keep_size warns %q", w)
			}
			warned = true
		}
		src.Exec("app", `CHECKPOINT`)
		if src.QueryString("app", `SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'pglink_lost'`) == "lost" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot was not invalidated")
		}
	}

	if !warned {
		t.Error("the slot was never seen unreserved before it was lost")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg.Logger = nil
	err := Run(ctx, cfg)
	if ctx.Err() != nil {
		t.Fatal("pglink start on a link whose slot is invalidated still runs after a minute")
	}
	for _, want := range []string{"pglink_lost", "invalidated", "max_slot_wal_keep_size", "pglink drop --name lost", "pglink start"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("pglink start on a link whose slot is invalidated: error %v; want it to mention %q", err, want)
		}
	}
	st := linkStatus(t, "lost", cfg.Target, cfg.Source)
	said := strings.Join(st.Warnings, "\n") + "\n" + st.LastError + "\n" + st.Remedy
	for _, want := range []string{"invalidated", "pglink drop --name lost"} {
		if !strings.Contains(said, want) {
			t.Errorf("pglink status of a link whose slot is invalidated does not mention %q:\n%s", want, said)
		}
	}
	for _, w := range st.Warnings {
		if strings.Contains(w, "invalidated") && !strings.Contains(w, "pglink drop --name lost") {
			t.Errorf("status warning without the remedy: %s", w)
		}
	}
}
