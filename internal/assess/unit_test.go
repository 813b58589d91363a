package assess

import (
	"context"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestExtensionFindings compares real extension lists. Both test servers
// come from one PostgreSQL installation, so the target offers every
// extension the source has; a target whose installation lacks one is
// made by leaving it out of the list read from the real target, which is
// exactly what pg_available_extensions would return there. (Making a real
// installation without it would mean writing to the system's extension
// directory.)
func TestExtensionFindings(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE EXTENSION citext`, `CREATE EXTENSION hstore`)
	dst.CreateDB("app")
	dst.Exec("app", `CREATE EXTENSION hstore VERSION '1.7'`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exts, err := sourceExtensions(ctx, src.Connect("app"))
	if err != nil {
		t.Fatal(err)
	}
	if len(exts) != 2 || exts[0].Name != "citext" || exts[1].Name != "hstore" {
		t.Fatalf("source extensions: %+v", exts)
	}
	avail, err := targetExtensions(ctx, dst.Connect("app"), true)
	if err != nil {
		t.Fatal(err)
	}
	if avail["hstore"].Installed != "1.7" || avail["citext"].Installed != "" || len(avail["citext"].Versions) == 0 {
		t.Fatalf("target extensions: hstore %+v, citext %+v", avail["hstore"], avail["citext"])
	}

	fs := extensionFindings(exts, avail)
	wantFinding(t, fs, "extensions", Info, "citext")
	wantFinding(t, fs, "extension_versions", Warning, "hstore is at version 1.7 on the target and "+exts[1].Version,
		`ALTER EXTENSION "hstore" UPDATE TO '`+exts[1].Version+`';`)
	noFinding(t, fs, "extensions_missing")

	delete(avail, "citext") // a target installation without citext's files
	fs = extensionFindings(exts, avail)
	wantFinding(t, fs, "extensions_missing", Blocker, "citext "+exts[0].Version, "pg_available_extensions", "install the packages")
	noFinding(t, fs, "extensions")

	// A target database that does not exist yet has nothing installed.
	avail, err = targetExtensions(ctx, dst.Connect("postgres"), false)
	if err != nil {
		t.Fatal(err)
	}
	fs = extensionFindings(exts, avail)
	wantFinding(t, fs, "extensions", Info, "citext", "hstore")
	noFinding(t, fs, "extension_versions")
}

func TestCapacityFinding(t *testing.T) {
	for _, c := range []struct {
		max, used int
		want      Severity
	}{{10, 0, Info}, {10, 8, Info}, {10, 9, Warning}, {10, 10, Blocker}, {0, 0, Blocker}} {
		f := capacityFinding("replication_slots", "max_replication_slots", "replication slots", c.max, c.used)
		if f.Severity != c.want {
			t.Errorf("%d of %d used: %s, want %s (%s)", c.used, c.max, f.Severity, c.want, f.What)
		}
	}
}

func TestOriginCapacityFinding(t *testing.T) {
	for _, c := range []struct {
		max, used int
		want      Severity
	}{{10, 0, Info}, {10, 8, Info}, {10, 9, Warning}, {10, 10, Blocker}} {
		f := originCapacityFinding(c.max, c.used)
		if f.Severity != c.want || f.Side != endpoint.Target {
			t.Errorf("%d of %d used: %s on the %s, want %s on the target (%s)", c.used, c.max, f.Severity, f.Side, c.want, f.What)
		}
	}
}

func TestEstimate(t *testing.T) {
	e := EstimateFrom(SizingInput{CopyBytes: 10 * gib, CopyRate: 100 << 20, Jobs: 4, SharedBuffers: 128 << 20,
		Sample: Sample{WALBytesPerSec: 1 << 20, CommitsPerSec: 2500}})
	if e.SeedSeconds != 102.4 || e.WALDuringSeedBytes != 107374182 {
		t.Errorf("seed %v s, WAL %d", e.SeedSeconds, e.WALDuringSeedBytes)
	}
	if e.TargetStorageBytes != 15*gib || e.TargetMemoryBytes != gib || e.TargetCores != 4 {
		t.Errorf("target: %d bytes, %d memory, %d cores", e.TargetStorageBytes, e.TargetMemoryBytes, e.TargetCores)
	}
	if len(e.Reasoning) != 5 {
		t.Errorf("reasoning: %q", e.Reasoning)
	}
	e = EstimateFrom(SizingInput{CopyBytes: 10 * gib, Jobs: 2, SharedBuffers: 4 * gib, Sample: Sample{CommitsPerSec: 9100}})
	if e.AssumedCopyBytesPerSec != DefaultCopyRate || e.TargetMemoryBytes != 16*gib || e.TargetCores != 10 {
		t.Errorf("estimate: %+v", e)
	}
	fs := estimateFindings(Estimate{WALDuringSeedBytes: 3 * gib}, 1024, new(int64(gib)))
	wantFinding(t, fs, "slot_invalidation", Warning, "3.0 GB", "1.0 GB", "max_slot_wal_keep_size = '6GB'")
	wantFinding(t, fs, "wal_disk", Warning, "stops the source server")
	if fs := estimateFindings(Estimate{WALDuringSeedBytes: 3 * gib}, -1, nil); len(fs) != 0 {
		t.Errorf("findings without limits: %+v", fs)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 bytes", 1023: "1023 bytes", 1536: "1.5 kB", 3 * gib: "3.0 GB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
