package failover

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/instance"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestScripts checks that the plans render as stable, valid bash, and
// that no connection string gets into them.
func TestScripts(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []Options{
		{Name: "shop", Source: "postgres://u:secret@h/db", Target: "postgres://u:secret@t/db", Kind: Planned},
		{Name: "shop", Source: "postgres://u:secret@h/db", Target: "postgres://u:secret@t/db", Kind: Planned, Validate: true, Cleanup: true, ReleaseSource: true},
		{Name: "shop", Target: "postgres://u:secret@t/db", Kind: Forced, Cleanup: true},
	} {
		p1, err := Build(o)
		if err != nil {
			t.Fatal(err)
		}
		p2, _ := Build(o)
		s := Script(p1)
		if s != Script(p2) {
			t.Error("the script is not stable")
		}
		if strings.Contains(s, "secret") || strings.Contains(s, "@h/db") || strings.Contains(s, "@t/db") {
			t.Error("the script holds a connection string")
		}
		path := filepath.Join(dir, "failover.sh")
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
			t.Fatalf("bash -n: %v\n%s\n%s", err, out, s)
		}
	}
}

// runScript renders o's plan as a script and runs it with bash, the
// connection strings in the environment and psql on PATH, as a user would.
func runScript(t *testing.T, f *fixture, o Options) (string, error) {
	t.Helper()
	p, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "failover.sh")
	if err := os.WriteFile(path, []byte(Script(p)), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, err := instance.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", path)
	cmd.Env = append(os.Environ(), "PGLINK_SOURCE="+f.source, "PGLINK_TARGET="+f.target,
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	t.Logf("script output:\n%s", out)
	return string(out), err
}

// TestPlannedFailoverScript runs the printed plan of a planned failover
// under load: first one that fails (its catch-up cannot finish in the
// time it is given) and must undo what it did, then one that completes.
// Afterwards the two sides must be what a failover run by pglink leaves.
func TestPlannedFailoverScript(t *testing.T) {
	f := newFixture(t, "script")
	f.startLink()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	w, wdone := f.startWriter(ctx)

	out, err := runScript(t, f, Options{Name: "script", Source: f.source, Target: f.target, Kind: Planned,
		Timeout: time.Nanosecond, MaxLag: 30 * time.Second})
	// With no time at all, the step fails either waiting for the link to
	// hold or, when the link held at once, waiting for it to catch up.
	failedAtCatchUp := strings.Contains(out, "did not hold") || strings.Contains(out, "did not catch up")
	if err == nil || !failedAtCatchUp || !strings.Contains(out, "what it changed was undone") {
		t.Fatalf("the script should fail at the catch-up and undo: %v", err)
	}
	<-wdone // the fence ended the writer's session
	f.assertWritableAndLinked(t)
	w, wdone = f.startWriter(ctx)

	out, err = runScript(t, f, Options{Name: "script", Source: f.source, Target: f.target, Kind: Planned,
		Validate: true, Cleanup: true, Timeout: time.Minute, MaxLag: 30 * time.Second})
	if err != nil || !strings.Contains(out, "failover of link script: done") {
		t.Fatalf("failover script: %v", err)
	}
	<-wdone
	f.assertFailedOver(t, w, true)
}

// TestForcedFailoverScript runs the printed plan of a forced failover with
// --cleanup after the source is gone: the target takes writes, its
// sequences go past their columns' maxima plus the margin, and what the
// link kept on the target is removed, the data kept.
func TestForcedFailoverScript(t *testing.T) {
	f := newFixture(t, "gonescript")
	f.startLink()
	if err := pgtest.ExecOn(f.source, `INSERT INTO accounts (owner) SELECT 'last ' || g FROM generate_series(1, 50) g`); err != nil {
		t.Fatal(err)
	}
	f.waitFor("the last rows on the target", time.Minute, func() bool {
		return f.targetString(`SELECT count(*)::text FROM accounts WHERE owner LIKE 'last %'`) == "50"
	})
	if err := f.src.Stop(context.Background(), "immediate"); err != nil {
		t.Fatal(err)
	}
	out, err := runScript(t, f, Options{Name: "gonescript", Source: f.source, Target: f.target, Kind: Forced,
		Cleanup: true, SequenceMargin: 1000})
	if err != nil || !strings.Contains(out, "failover of link gonescript: done") || !strings.Contains(out, "the source does not answer") {
		t.Fatalf("forced failover script: %v", err)
	}
	if err := f.linkEnded(30 * time.Second); err != nil {
		t.Errorf("the link should stop: %v", err)
	}
	maxID, _ := strconv.ParseInt(f.targetString(`SELECT max(id)::text FROM accounts`), 10, 64)
	if err := pgtest.ExecOn(f.target, `INSERT INTO accounts (owner) VALUES ('after')`); err != nil {
		t.Fatalf("the target refuses writes: %v", err)
	}
	newID, _ := strconv.ParseInt(f.targetString(`SELECT id::text FROM accounts WHERE owner = 'after'`), 10, 64)
	if newID < maxID+1000 {
		t.Errorf("new id %d: the sequence was not set past the maximum %d plus the margin", newID, maxID)
	}
	if n := f.targetString(`SELECT count(*)::text FROM accounts WHERE owner LIKE 'last %'`); n != "50" {
		t.Errorf("%s of the last 50 rows on the target after the cleanup", n)
	}
	left := f.targetString(`SELECT concat_ws(', ',
		(SELECT 'origin' FROM pg_replication_origin WHERE roname IN ('pglink_gonescript', 'pglink_gonescript.2') LIMIT 1),
		(SELECT 'schema pglink' FROM pg_namespace WHERE nspname = 'pglink'))`)
	if left != "" {
		t.Errorf("left on the target after --cleanup: %s", left)
	}
}
