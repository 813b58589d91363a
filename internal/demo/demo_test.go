package demo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/instance"
)

// TestDemo runs the whole demo at a small scale: seeding under a write
// workload, catching up, and a row-by-row comparison. Whether it succeeds
// or fails, both instances must be gone afterwards.
func TestDemo(t *testing.T) {
	if os.Getenv("PGLINK_SKIP_PG") != "" {
		t.Skip("PGLINK_SKIP_PG is set")
	}
	dir, err := instance.MkdirTemp("pglink-demo-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err = Run(ctx, Options{Scale: 100, Clients: 2, Live: 3 * time.Second, Dir: dir, Out: &out, SeedTimeout: 30 * time.Second, BrokenTimeout: 5 * time.Second,
		// The other packages' tests share the cores: the lag may stay over
		// the demo's 1 s for minutes.
		MaxLag: 30 * time.Second})
	for _, side := range []string{"source", "target"} {
		if _, serr := os.Stat(filepath.Join(dir, side)); !os.IsNotExist(serr) {
			t.Errorf("the %s instance was not removed (stat: %v)", side, serr)
		}
	}
	if err != nil {
		t.Fatalf("demo: %v\noutput:\n%s", err, out.String())
	}
	for _, want := range []string{"Planned failover of link demo: done", "Write downtime", "Audit.Events", "identical: 7 tables", "stopped by itself"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
