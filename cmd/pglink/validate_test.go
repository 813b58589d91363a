package main

import (
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestValidateExitCodes checks that a comparison that cannot be made exits
// 2 (never 0 or 1), and that a usage mistake exits 2 with a pointer to help.
func TestValidateExitCodes(t *testing.T) {
	clearEnv(t)
	c := pgtest.Start(t, pgtest.Options{})
	c.CreateDB("app")
	code, _, stderr := pglink(t, "validate", "--name", "nosuch", "--source", c.URL("app"), "--target", c.URL("app"))
	if code != exitNotCompared || !strings.Contains(stderr, "could not compare") {
		t.Errorf("validate of a missing link: exit %d, stderr %q; want %d and 'could not compare'", code, stderr, exitNotCompared)
	}
	code, _, stderr = pglink(t, "validate", "--name", "Bad", "--source", c.URL("app"), "--target", c.URL("app"))
	if code != exitUsage || !strings.Contains(stderr, "--help") {
		t.Errorf("validate with a bad name: exit %d, stderr %q", code, stderr)
	}
}
