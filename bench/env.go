package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/instance"
)

// durableSettings make the benchmark's servers durable, as production
// servers are (the instances made for tests and the demo turn fsync off):
// a commit that waits for its WAL flush costs here what it costs users.
var durableSettings = map[string]string{
	"fsync":              "on",
	"synchronous_commit": "on",
	"full_page_writes":   "on",
	"shared_buffers":     "256MB",
	"max_wal_size":       "4GB",
	"checkpoint_timeout": "15min",
	// The logical replication launcher starts a subscription's worker at
	// most once per wal_retrieve_retry_interval (5 s by default); a native
	// catch-up measured right after another would wait for it.
	"wal_retrieve_retry_interval": "50ms",
}

// server is one PostgreSQL instance the benchmark made, in a directory of
// its own that records the benchmark's pid, so a later run removes it if
// this one was killed before it could.
type server struct {
	*instance.Instance
	root string
}

const serverDirPrefix = "pglink-bench-"
const ownerFile = "owner.pid"

func startServer(ctx context.Context, settings map[string]string) (*server, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		root, err := instance.MkdirTemp(serverDirPrefix)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(root, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			os.RemoveAll(root)
			return nil, err
		}
		inst, err := instance.Create(ctx, instance.Options{Dir: filepath.Join(root, "data"), Settings: settings})
		if err != nil {
			os.RemoveAll(root)
			return nil, err
		}
		if err := inst.Start(ctx); err != nil {
			lastErr = err
			os.RemoveAll(root)
			continue // most likely the free port was taken meanwhile
		}
		return &server{Instance: inst, root: root}, nil
	}
	return nil, fmt.Errorf("start PostgreSQL: %w", lastErr)
}

// remove stops the server at once and deletes its directory, replication
// slots and all.
func (s *server) remove() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.Stop(ctx, "immediate")
	return errors.Join(err, os.RemoveAll(s.root))
}

// reapOrphans removes the servers of benchmark runs that died without
// cleaning up (killed with SIGKILL, say).
func reapOrphans() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), serverDirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		if inst, err := instance.Open(filepath.Join(dir, "data")); err == nil {
			inst.Stop(ctx, "immediate")
		}
		os.RemoveAll(dir)
	}
}

// hostArgs are the connection flags of the PostgreSQL client programs.
func hostArgs(inst *instance.Instance) []string {
	return []string{"-h", "127.0.0.1", "-p", strconv.Itoa(inst.Port), "-U", instance.Superuser}
}

// connInfo is a key=value connection string, as CREATE SUBSCRIPTION takes.
func connInfo(inst *instance.Instance, db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s", inst.Port, instance.Superuser, db)
}

// proc is a child process in a process group of its own, so a terminal's
// Ctrl-C reaches the benchmark only, which then stops its children in
// order. Every proc is registered until it exits; killAll ends the rest.
type proc struct {
	cmd  *exec.Cmd
	name string
	out  *syncBuffer
	done chan struct{}
	err  error // valid after done
}

var (
	procsMu sync.Mutex
	procs   = map[*proc]bool{}
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startProc starts name with args and extra environment variables.
func startProc(env []string, name string, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	p := &proc{cmd: cmd, name: filepath.Base(name), out: out, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}
	procsMu.Lock()
	procs[p] = true
	procsMu.Unlock()
	go func() {
		p.err = cmd.Wait()
		procsMu.Lock()
		delete(procs, p)
		procsMu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process's whole group.
func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		syscall.Kill(-p.pid(), sig)
	}
}

// wait waits for the process to exit; when ctx ends first, it is killed.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.done:
	case <-ctx.Done():
		p.kill()
		return ctx.Err()
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w\n%s", p.name, p.err, tail(p.out.String(), 20))
	}
	return nil
}

// stop asks the process to stop with SIGINT (pglink stops cleanly on it)
// and kills it when it has not exited within grace.
func (p *proc) stop(grace time.Duration) error {
	p.signal(syscall.SIGINT)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		p.kill()
		return fmt.Errorf("%s did not stop within %s; killed", p.name, grace)
	}
}

func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// killAll kills every child still running.
func killAll() {
	procsMu.Lock()
	list := make([]*proc, 0, len(procs))
	for p := range procs {
		list = append(list, p)
	}
	procsMu.Unlock()
	for _, p := range list {
		p.kill()
	}
}

// run runs a command to its end and returns its output.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	p, err := startProc(env, name, args...)
	if err != nil {
		return "", err
	}
	err = p.wait(ctx)
	return p.out.String(), err
}

// peakRSS returns the process's peak resident memory (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// connect opens a session to db on inst.
func connect(ctx context.Context, inst *instance.Instance, db string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, inst.URL(db))
	if err != nil {
		return nil, fmt.Errorf("connect to %s on port %d: %w", db, inst.Port, err)
	}
	return conn, nil
}

// execSQL runs each statement in db on inst, in a session of its own.
func execSQL(ctx context.Context, inst *instance.Instance, db string, sqls ...string) error {
	conn, err := connect(ctx, inst, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range sqls {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", shortSQL(s), err)
		}
	}
	return nil
}

func shortSQL(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return s
}

// createDB creates database db on inst, dropping it first if it exists.
func createDB(ctx context.Context, inst *instance.Instance, db string) error {
	q := pgx.Identifier{db}.Sanitize()
	return execSQL(ctx, inst, "postgres", "DROP DATABASE IF EXISTS "+q+" WITH (FORCE)", "CREATE DATABASE "+q)
}

func dropDB(ctx context.Context, inst *instance.Instance, db string) error {
	return execSQL(ctx, inst, "postgres", "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
}

// warmWAL has a fresh server write about bytes of WAL and checkpoint, so
// it has WAL segment files to recycle: without them, whatever runs first
// on it also pays for creating and zero-filling every new 16 MB segment
// (in one report pglink's first seeding took 3 s more target CPU than the
// next two, its copy 7.0 s against 4.4-4.7 s).
func warmWAL(ctx context.Context, inst *instance.Instance, bytes int64) error {
	rows := max(bytes/1000, 1000)
	return execSQL(ctx, inst, "postgres",
		fmt.Sprintf(`CREATE TABLE pglink_bench_warm AS SELECT g, repeat('x', 900) AS pad FROM generate_series(1, %d) g`, rows),
		`DROP TABLE pglink_bench_warm`,
		`CHECKPOINT`,
		`CHECKPOINT`)
}

// checkpoint makes each server write its dirty buffers now, so the next
// measurement does not pay for the previous one's.
func checkpoint(ctx context.Context, servers ...*instance.Instance) error {
	for _, s := range servers {
		if err := execSQL(ctx, s, "postgres", "CHECKPOINT"); err != nil {
			return err
		}
	}
	return nil
}
