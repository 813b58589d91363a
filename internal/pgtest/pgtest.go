// Package pgtest starts throwaway PostgreSQL clusters for tests, on free
// loopback ports, configured for logical replication. Every cluster is
// stopped and removed when its test ends, passed or failed.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/instance"
)

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	*instance.Instance
	t testing.TB
}

// Options tune a cluster; the zero value is a logical-replication-ready server.
type Options struct {
	Settings map[string]string // extra postgresql.conf settings
	// Version is the server's major version (13 to 18, see BinDir); 0 is
	// the default server (Debian's 15).
	Version int
	// Files are written into the data directory before the server starts
	// (instance.Options.Files): see CA.Server for TLS.
	Files map[string][]byte
}

// Start creates and starts a cluster; t.Cleanup stops and removes it.
// Tests that need PostgreSQL are skipped only when PGLINK_SKIP_PG is set;
// a missing server is otherwise a failure, so the suite cannot pass by not
// running.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if os.Getenv("PGLINK_SKIP_PG") != "" {
		t.Skip("PGLINK_SKIP_PG is set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reapOrphans(ctx)
	bin, err := BinDir(opts.Version)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		dir, err := instance.MkdirTemp("pgtest-")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			t.Fatal(err)
		}
		inst, err := instance.Create(ctx, instance.Options{Dir: dir + "/data", BinDir: bin, Settings: opts.Settings, Files: opts.Files})
		if err != nil {
			os.RemoveAll(dir)
			t.Fatal(err)
		}
		if err := inst.Start(ctx); err != nil {
			lastErr = err
			os.RemoveAll(dir)
			continue // most likely the free port was taken meanwhile
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := inst.Stop(ctx, "immediate"); err != nil {
				t.Errorf("pgtest: %v", err)
			}
			os.RemoveAll(dir)
		})
		return &Cluster{Instance: inst, t: t}
	}
	t.Fatalf("pgtest: start cluster: %v", lastErr)
	return nil
}

// Connect opens a superuser connection to db, closed when the test ends.
func (c *Cluster) Connect(db string) *pgx.Conn {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		c.t.Fatalf("pgtest: connect to %s: %v", db, err)
	}
	c.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// CreateDB creates database name.
func (c *Cluster) CreateDB(name string) {
	c.t.Helper()
	c.Exec("postgres", fmt.Sprintf("CREATE DATABASE %s", pgx.Identifier{name}.Sanitize()))
}

// Exec runs each SQL string in db, failing the test on the first error.
func (c *Cluster) Exec(db string, sqls ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		c.t.Fatalf("pgtest: connect to %s: %v", db, err)
	}
	defer conn.Close(context.Background())
	for _, s := range sqls {
		if _, err := conn.Exec(ctx, s); err != nil {
			c.t.Fatalf("pgtest: exec %q in %s: %v", short(s), db, err)
		}
	}
}

// QueryString returns the first column of the first row of sql, as text.
func (c *Cluster) QueryString(db, sql string, args ...any) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		c.t.Fatalf("pgtest: connect to %s: %v", db, err)
	}
	defer conn.Close(context.Background())
	var s *string
	if err := conn.QueryRow(ctx, "SELECT ("+sql+")::text", args...).Scan(&s); err != nil {
		c.t.Fatalf("pgtest: query %q in %s: %v", short(sql), db, err)
	}
	if s == nil {
		return "NULL"
	}
	return *s
}

// ownerFile holds the pid of the test process that made a cluster.
const ownerFile = "owner.pid"

// reapOrphans stops and removes the clusters of test processes that died
// without cleaning up (killed by a timeout, say), so they cannot pile up.
func reapOrphans(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) == nil || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		if inst, err := instance.Open(filepath.Join(dir, "data")); err == nil {
			inst.Stop(ctx, "immediate")
		}
		os.RemoveAll(dir)
	}
}

func short(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// ExecOn runs sqls, one by one, in one session of conninfo (any role, any
// server), and returns the first error: for tests that expect a refusal.
func ExecOn(conninfo string, sqls ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, conninfo)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return err
		}
	}
	return nil
}
