package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// Guard thresholds: far from today's figures (bench/README.md), so that
// only a gross regression fails on a busy two-core machine.
const (
	// guardMinCatchUpRatio is the least pglink's catch-up may reach of the
	// native subscription's transactions per second on the same backlog,
	// timed from pglink's start: on a machine that runs the other test
	// packages at the same time, medians of 0.45x to 0.85x were seen.
	guardMinCatchUpRatio = 0.3
	// guardMaxRSS bounds pglink's peak memory while it applies one huge
	// transaction.
	guardMaxRSS = 300 << 20
)

// TestGuard is a short version of figures 2 and 5 of the benchmark: a
// backlog of 20,000 pgbench transactions applied by pglink and by a native
// subscription, and pglink's memory on a 200,000-row transaction. It fails
// only on a gross regression.
func TestGuard(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_retrieve_retry_interval": "50ms"}})
	pg := pglinkCmd{bin: buildPglink(t)}
	t.Cleanup(killAll)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t.Run("CatchUp", func(t *testing.T) {
		src.CreateDB("guard")
		if err := pgbenchInit(ctx, src.Instance, "guard", 1); err != nil {
			t.Fatal(err)
		}
		r := newReplicas(pg, src.Instance, dst.Instance, "guard", 2)
		if err := r.setup(ctx, append(append([]string{}, pgbenchTables...), "bench_marker"), 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		var ratios []float64
		for i := range 3 {
			b, err := r.backlog(ctx, workload{Clients: 4, Txns: 5000}, i%2 == 0, "")
			if err != nil {
				t.Fatal(err)
			}
			ratios = append(ratios, b.PglinkTPS()/b.NativeTPS())
			t.Logf("backlog of %d transactions: pglink %.2fs (%.0f txn/s), native subscription %.2fs (%.0f txn/s)",
				b.Txns, b.Pglink.Seconds(), b.PglinkTPS(), b.Native.Seconds(), b.NativeTPS())
		}
		if err := sameRows(ctx, r); err != nil {
			t.Fatal(err)
		}
		if got := median(ratios); got < guardMinCatchUpRatio {
			t.Errorf("pglink caught up at %.2fx the native subscription's rate (median of %v), want at least %.2fx",
				got, ratios, guardMinCatchUpRatio)
		}
		if err := r.teardown(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Memory", func(t *testing.T) {
		b := newBigTxn(pg, src.Instance, dst.Instance)
		if err := b.setup(ctx); err != nil {
			t.Fatal(err)
		}
		r, err := b.run(ctx, 200_000, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("one transaction of %d rows: peak RSS %d MB, applied in %.1fs", r.Rows, r.PeakRSS>>20, r.Apply.Seconds())
		if r.PeakRSS > guardMaxRSS {
			t.Errorf("peak RSS %d MB, want under %d MB", r.PeakRSS>>20, guardMaxRSS>>20)
		}
		if err := b.teardown(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// buildPglink builds the pglink command without the race detector, so its
// memory and speed are what users get.
func buildPglink(t *testing.T) string {
	t.Helper()
	if os.Getenv("PGLINK_SKIP_PG") != "" {
		t.Skip("PGLINK_SKIP_PG is set")
	}
	bin := filepath.Join(t.TempDir(), "pglink")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/pglink").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
