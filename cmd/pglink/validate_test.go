package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/link"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/status"
	"github.com/pglink/pglink/internal/validate"
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

// TestValidateRunningLink validates a running link: exit 0 and the table
// when identical; exit 1 and the differing key in the JSON report after a
// row is changed on the target behind the link's back.
func TestValidateRunningLink(t *testing.T) {
	clearEnv(t)
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.items (id int PRIMARY KEY, v text)`,
		`INSERT INTO public.items SELECT g, 'v' || g FROM generate_series(1, 5000) g`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- link.Run(ctx, link.Config{Name: "val", Source: src.URL("app"), Target: dst.URL("app"), Jobs: 2,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the link did not stop")
		}
	}()
	waitReplicating(t, src.URL("app"), dst.URL("app"), done)

	args := []string{"validate", "--name", "val", "--source", src.URL("app"), "--target", dst.URL("app")}
	code, stdout, stderr := pglink(t, args...)
	if code != exitOK || !strings.Contains(stdout, "source and target hold the same data") || !strings.Contains(stderr, "compared public.items") {
		t.Fatalf("validate of an identical link: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	dst.Exec("app", `SET default_transaction_read_only = off`, `SET session_replication_role = replica`,
		`UPDATE public.items SET v = 'tampered' WHERE id = 4242`)
	code, stdout, stderr = pglink(t, append(args, "--json")...)
	if code != exitDifferent {
		t.Fatalf("validate after a change on the target: exit %d, want %d\nstderr:\n%s", code, exitDifferent, stderr)
	}
	var rep validate.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, stdout)
	}
	if len(rep.Tables) != 1 || strings.Join(rep.Tables[0].Different, ";") != "(4242)" {
		t.Errorf("JSON report names %+v, want the key (4242) different", rep.Tables)
	}

	code, stdout, _ = pglink(t, append(args, "--quick")...)
	if code != exitOK || !strings.Contains(stdout, "count") {
		t.Errorf("quick validation (row counts are equal): exit %d\n%s", code, stdout)
	}
}

func waitReplicating(t *testing.T, source, target string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("the link stopped: %v", err)
		default:
		}
		st, err := status.Read(context.Background(), "val", target, source)
		if err == nil && st.Phase == "replicating" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the link did not reach the phase replicating within a minute")
}
