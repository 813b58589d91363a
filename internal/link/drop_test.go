package link

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
)

// TestDropHalfMade drops a link whose target database is gone: what the
// link made on the source is still removed, and the error says what could
// not be.
func TestDropHalfMade(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id int PRIMARY KEY)`, `INSERT INTO public.t VALUES (1)`)
	cfg := Config{Name: "half", Source: src.URL("app"), Target: dst.URL("gone")}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
	dst.Exec("postgres", `DROP DATABASE gone WITH (FORCE)`)
	err := state.Drop(context.Background(), "half", cfg.Source, cfg.Target, nil)
	if err == nil || !strings.Contains(err.Error(), "target") {
		t.Fatalf("drop with the target database gone: %v, want an error about the target", err)
	}
	if got := src.QueryString("app", "SELECT count(*) FROM pg_replication_slots"); got != "0" {
		t.Errorf("the source keeps %s slots", got)
	}
	if got := src.QueryString("app", "SELECT count(*) FROM pg_publication"); got != "0" {
		t.Errorf("the source keeps %s publications", got)
	}
}
