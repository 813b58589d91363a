package link

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/compare"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/status"
)

// testLink is a link run in the test process, stopped by stop().
type testLink struct {
	t      *testing.T
	cfg    Config
	cancel context.CancelFunc
	done   chan error
}

func startTestLink(t *testing.T, cfg Config) *testLink {
	t.Helper()
	if cfg.Jobs == 0 {
		cfg.Jobs = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(pgtest.LogTo(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &testLink{t: t, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { l.done <- Run(ctx, cfg) }()
	t.Cleanup(func() { l.stop() })
	return l
}

// stop stops the link and returns what Run returned.
func (l *testLink) stop() error {
	l.cancel()
	select {
	case err, ok := <-l.done:
		if ok {
			close(l.done)
			return err
		}
		return nil
	case <-time.After(30 * time.Second):
		l.t.Fatalf("link %s did not stop within 30s", l.cfg.Name)
		return nil
	}
}

// failed returns Run's error if Run has returned already.
func (l *testLink) failed() error {
	select {
	case err, ok := <-l.done:
		if !ok {
			return nil
		}
		close(l.done)
		if err == nil {
			err = errors.New("link stopped by itself")
		}
		return err
	default:
		return nil
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, l *testLink, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("wait for %s: %v", what, err)
		}
		if ok {
			return
		}
		if l != nil {
			if err := l.failed(); err != nil {
				t.Fatalf("wait for %s: link failed: %v", what, err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("wait for %s: still not there after %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func linkStatus(t *testing.T, name, target, source string) *report.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := status.Read(ctx, name, target, source)
	if err != nil {
		t.Fatalf("status of link %s: %v", name, err)
	}
	return st
}

func waitPhase(t *testing.T, l *testLink, phase string, timeout time.Duration) {
	t.Helper()
	waitFor(t, "phase "+phase, timeout, l, func() (bool, error) {
		st, err := status.Read(context.Background(), l.cfg.Name, l.cfg.Target, "")
		if err != nil {
			return false, nil // the link may not be recorded yet
		}
		return string(st.Phase) == phase, nil
	})
}

// waitCaughtUp waits until the target has applied everything the source
// had written when it was called: up to its WAL insert position, since
// the test servers commit asynchronously and pg_current_wal_lsn (the
// position written out) can still be before the last commits.
func waitCaughtUp(t *testing.T, l *testLink, src *pgtest.Cluster, srcDB string, timeout time.Duration) {
	t.Helper()
	lsn := src.QueryString(srcDB, "pg_current_wal_insert_lsn()")
	target := state.ParseLSN(&lsn)
	waitFor(t, "target to apply up to "+lsn, timeout, l, func() (bool, error) {
		st, err := status.Read(context.Background(), l.cfg.Name, l.cfg.Target, "")
		if err != nil || st.AppliedLSN == "" {
			return false, nil
		}
		return state.ParseLSN(&st.AppliedLSN) >= target, nil
	})
}

// assertSame compares the two databases row by row.
func assertSame(t *testing.T, src, dst *pgtest.Cluster, srcDB, dstDB string) compare.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := compare.Databases(ctx, src.Connect(srcDB), dst.Connect(dstDB))
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	if !res.Equal() {
		t.Fatalf("source and target differ:\n%s", res.String())
	}
	if res.Rows == 0 {
		t.Fatalf("compare read no rows: %s", res.String())
	}
	return res
}

func execFile(t *testing.T, c *pgtest.Cluster, db, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Exec(db, string(b))
}

func count(t *testing.T, c *pgtest.Cluster, db, sql string) string {
	t.Helper()
	return c.QueryString(db, sql)
}

// execErr runs sql and returns its error.
func execErr(c *pgtest.Cluster, db, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
