package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/instance"
)

// pglink runs one command line in-process and returns its exit code and output.
func pglink(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func clearEnv(t *testing.T) {
	for _, env := range []string{"PGLINK_NAME", "PGLINK_SOURCE", "PGLINK_TARGET"} {
		t.Setenv(env, "")
	}
}

func TestUsageErrors(t *testing.T) {
	clearEnv(t)
	for _, c := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"start", "--source", "s", "--target", "t"}, "no link name: give --name or set PGLINK_NAME"},
		{[]string{"start", "--name", "Bad-Name", "--source", "s", "--target", "t"}, `invalid link name "Bad-Name"`},
		{[]string{"start", "--name", "shop", "--target", "t"}, "no source: give --source or set PGLINK_SOURCE"},
		{[]string{"start", "--name", "shop", "--source", "s"}, "no target: give --target or set PGLINK_TARGET"},
		{[]string{"start", "--name", "shop", "--source", "s", "--target", "t", "--schema", "x"}, `--schema "x"`},
		{[]string{"drop", "--name", "shop", "--target", "t"}, "no source"},
		{[]string{"status", "--target", "t"}, "no link name"},
		{[]string{"status", "--name", "shop", "--jsn"}, "unknown flag: --jsn"},
		{[]string{"instance", "create"}, "no data directory: give --dir"},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"instance", "bogus"}, `unknown instance command "bogus"`},
		{[]string{"serve", "--config", "c.yaml", "--token", "x", "--token-file", "f"}, "--token and --token-file exclude each other"},
		{[]string{"serve", "--config", "c.yaml", "--token-file", "/nonexistent/token"}, "--token-file: open /nonexistent/token"},
	} {
		code, _, stderr := pglink(t, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "--help") {
			t.Errorf("pglink %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, stderr, exitUsage, c.want)
		}
	}
}

// TestEnvFallback checks that PGLINK_* fill the flags: with all three set,
// status gets past the flag checks and fails on the (unreachable) target,
// without printing the password of the connection string.
func TestEnvFallback(t *testing.T) {
	clearEnv(t)
	t.Setenv("PGLINK_NAME", "shop")
	t.Setenv("PGLINK_TARGET", "postgres://u:sekret@127.0.0.1:1/db?connect_timeout=2")
	code, _, stderr := pglink(t, "status")
	if code != exitError {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitError, stderr)
	}
	if strings.Contains(stderr, "sekret") {
		t.Fatalf("the password appears in %q", stderr)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := pglink(t, "version")
	if code != exitOK || !strings.HasPrefix(stdout, "pglink ") {
		t.Fatalf("version: exit %d, %q", code, stdout)
	}
}

// TestInstanceLifecycle creates, stops, starts and removes an instance
// through the CLI, connecting to it when it should run.
func TestInstanceLifecycle(t *testing.T) {
	if os.Getenv("PGLINK_SKIP_PG") != "" {
		t.Skip("PGLINK_SKIP_PG is set")
	}
	parent, err := instance.MkdirTemp("pglink-cli-test-")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "data")
	t.Cleanup(func() {
		if inst, err := instance.Open(dir); err == nil {
			inst.Remove(context.Background())
		}
		os.RemoveAll(parent)
	})
	port, err := instance.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := pglink(t, "instance", "create", "--dir", dir, "--port", itoa(port))
	if code != exitOK {
		t.Fatalf("create: exit %d: %s", code, stderr)
	}
	url := lastLine(stdout)
	if want := "127.0.0.1:" + itoa(port); !strings.Contains(url, want) {
		t.Fatalf("create printed %q, want a URL with %s", stdout, want)
	}
	mustConnect(t, url, true)
	if code, _, stderr := pglink(t, "instance", "create", "--dir", dir); code != exitError || !strings.Contains(stderr, "already holds") {
		t.Fatalf("second create: exit %d: %s", code, stderr)
	}
	if code, _, stderr := pglink(t, "instance", "stop", "--dir", dir); code != exitOK {
		t.Fatalf("stop: exit %d: %s", code, stderr)
	}
	mustConnect(t, url, false)
	if code, _, stderr := pglink(t, "instance", "start", "--dir", dir); code != exitOK {
		t.Fatalf("start: exit %d: %s", code, stderr)
	}
	mustConnect(t, url, true)
	if code, _, stderr := pglink(t, "instance", "remove", "--dir", dir); code != exitOK {
		t.Fatalf("remove: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("data directory still there after remove: %v", err)
	}
	if code, _, _ := pglink(t, "instance", "start", "--dir", dir); code != exitError {
		t.Fatalf("start of a removed instance: exit %d, want %d", code, exitError)
	}
}

func mustConnect(t *testing.T, url string, up bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url+"&connect_timeout=3")
	if err == nil {
		conn.Close(ctx)
	}
	if up && err != nil {
		t.Fatalf("connect to the instance: %v", err)
	}
	if !up && err == nil {
		t.Fatal("the stopped instance accepts connections")
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func itoa(n int) string { return strconv.Itoa(n) }
