package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestAssessExitCodes runs pglink assess: 0 when nothing blocks, 1 on a
// blocker (with the finding in the JSON report), 2 when the source cannot
// be assessed or the command line is wrong.
func TestAssessExitCodes(t *testing.T) {
	clearEnv(t)
	src := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.ok (id int PRIMARY KEY)`, `CREATE TABLE public.nokey (v int)`)

	code, stdout, stderr := pglink(t, "assess", "--source", src.URL("app"), "--tables", "ok")
	if code != exitOK || !strings.Contains(stdout, "nothing blocks a link") {
		t.Errorf("clean source: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	t.Setenv("PGLINK_SOURCE", src.URL("app"))
	code, stdout, stderr = pglink(t, "assess", "--json")
	if code != exitBlocked || !strings.Contains(stderr, "1 blockers") {
		t.Errorf("table without key: exit %d, stderr %q", code, stderr)
	}
	var rep struct {
		Findings []struct{ Severity, Check string }
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, stdout)
	}
	found := false
	for _, f := range rep.Findings {
		found = found || (f.Check == "replica_identity" && f.Severity == "blocker")
	}
	if !found {
		t.Errorf("JSON report lacks the replica_identity blocker:\n%s", stdout)
	}

	code, _, stderr = pglink(t, "assess", "--source", "postgres://u:sekret@127.0.0.1:1/app?connect_timeout=2")
	if code != exitNotAssessed || !strings.Contains(stderr, "could not assess the source: source: cannot reach") || strings.Contains(stderr, "sekret") {
		t.Errorf("unreachable source: exit %d, stderr %q", code, stderr)
	}
	t.Setenv("PGLINK_SOURCE", "")
	for _, args := range [][]string{{"assess"}, {"assess", "--source", "s", "--schema", "x"}, {"assess", "--source", "s", "--sample", "-1s"}} {
		if code, _, stderr := pglink(t, args...); code != exitUsage || !strings.Contains(stderr, "--help") {
			t.Errorf("pglink %s: exit %d, stderr %q", strings.Join(args, " "), code, stderr)
		}
	}
}
