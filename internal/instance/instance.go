// Package instance creates, starts, stops and removes local PostgreSQL
// instances: the throwaway clusters of the tests and the demo, and the
// instances a user makes to try pglink out share this code.
//
// PostgreSQL refuses to run as root, so when the caller is root the server
// binaries run as the operating-system user "postgres" and the data directory
// is given to that user.
package instance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultBinDir is where Debian's postgresql-15 package puts the server.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// Superuser is the database superuser every instance is created with.
const Superuser = "postgres"

// Options describe a new instance.
type Options struct {
	Dir  string // data directory; created when missing
	Port int    // 0 picks a free loopback port
	// BinDir holds the PostgreSQL server binaries; BinDir() when empty. A
	// build that ships its own libraries in BinDir/../lib (libpq.so.5 there)
	// runs with LD_LIBRARY_PATH set to it.
	BinDir string
	// Settings are extra postgresql.conf lines (name -> value), on top of
	// the defaults that logical replication needs.
	Settings map[string]string
	// Files are written into the data directory before the server first
	// starts, readable by the server's user only (mode 0600): a TLS key and
	// certificates, say, which settings then name.
	Files map[string][]byte
}

// Instance is a local PostgreSQL data directory and the server on it.
type Instance struct {
	Dir    string
	Port   int
	BinDir string
}

// BinDir returns the directory of the PostgreSQL server binaries: PGLINK_PGBIN,
// then DefaultBinDir, then the directory of pg_ctl on PATH.
func BinDir() (string, error) {
	if d := os.Getenv("PGLINK_PGBIN"); d != "" {
		return d, nil
	}
	if _, err := os.Stat(filepath.Join(DefaultBinDir, "pg_ctl")); err == nil {
		return DefaultBinDir, nil
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries not found: install the postgresql-15 package " +
		"(apt-get install postgresql-15) or set PGLINK_PGBIN to the directory that holds pg_ctl")
}

// LibDir returns the library directory that the binaries in bin need on
// LD_LIBRARY_PATH: bin/../lib when it holds its own libpq (a relocatable
// build, such as the test servers of other major versions), else "" (a
// distribution's build finds its libraries itself).
func LibDir(bin string) string {
	lib := filepath.Join(filepath.Dir(bin), "lib")
	if _, err := os.Stat(filepath.Join(lib, "libpq.so.5")); err != nil {
		return ""
	}
	return lib
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Create runs initdb in opts.Dir and writes a configuration for logical
// replication that listens on 127.0.0.1 only. Host connections of the
// superuser are trusted; every other role must give its password.
func Create(ctx context.Context, opts Options) (*Instance, error) {
	if opts.Dir == "" {
		return nil, errors.New("instance: a data directory is needed (--dir)")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("instance dir %s: %w", opts.Dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err == nil {
		return nil, fmt.Errorf("instance dir %s already holds a PostgreSQL data directory: start it, or remove it first", dir)
	}
	bin := opts.BinDir
	if bin == "" {
		if bin, err = BinDir(); err != nil {
			return nil, err
		}
	}
	port := opts.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create instance dir %s: %w", dir, err)
	}
	if err := giveToServerUser(dir); err != nil {
		return nil, err
	}
	inst := &Instance{Dir: dir, Port: port, BinDir: bin}
	if _, err := inst.run(ctx, "initdb", "-D", dir, "-U", Superuser, "-E", "UTF8", "--locale=C.UTF-8",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb in %s: %w", dir, err)
	}
	for name, data := range opts.Files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, fmt.Errorf("write %s into %s: %w", name, dir, err)
		}
	}
	if err := inst.writeConfig(opts.Settings); err != nil {
		return nil, err
	}
	return inst, nil
}

// binDirComment starts the line of pglink.conf that names the binaries an
// instance was made with, so that Open stops it with the same ones.
const binDirComment = "# bin_dir: "

// Open returns the instance whose data directory is dir, reading its port
// (and the binaries it was made with) from the configuration pglink wrote.
func Open(dir string) (*Instance, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("instance dir %s: %w", dir, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pglink.conf"))
	if err != nil {
		return nil, fmt.Errorf("%s is not an instance made by pglink (no pglink.conf): %w", dir, err)
	}
	inst := &Instance{Dir: dir}
	for _, line := range strings.Split(string(b), "\n") {
		if d, ok := strings.CutPrefix(line, binDirComment); ok {
			inst.BinDir = strings.TrimSpace(d)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == "port" {
			inst.Port, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if inst.Port == 0 {
		return nil, fmt.Errorf("instance %s: no port in pglink.conf", dir)
	}
	if inst.BinDir != "" {
		return inst, nil
	}
	if inst.BinDir, err = BinDir(); err != nil {
		return nil, err
	}
	return inst, nil
}

func (i *Instance) writeConfig(extra map[string]string) error {
	settings := map[string]string{
		"port":                    strconv.Itoa(i.Port),
		"listen_addresses":        "'127.0.0.1'",
		"unix_socket_directories": "''",
		"wal_level":               "logical",
		"max_replication_slots":   "20",
		"max_wal_senders":         "20",
		"max_connections":         "100",
		"shared_buffers":          "128MB",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"max_wal_size":            "2GB",
		"logging_collector":       "off",
		"log_min_messages":        "warning",
		"log_line_prefix":         "'%m [%p] %q%u@%d '",
	}
	for k, v := range extra {
		settings[k] = v
	}
	var b strings.Builder
	b.WriteString("# written by pglink instance; included from postgresql.conf\n")
	b.WriteString(binDirComment + i.BinDir + "\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = %s\n", k, settings[k])
	}
	conf := filepath.Join(i.Dir, "pglink.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", conf, err)
	}
	main := filepath.Join(i.Dir, "postgresql.conf")
	f, err := os.OpenFile(main, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", main, err)
	}
	defer f.Close()
	if _, err := f.WriteString("\ninclude 'pglink.conf'\n"); err != nil {
		return fmt.Errorf("write %s: %w", main, err)
	}
	hba := "local all all trust\nhost all " + Superuser + " 127.0.0.1/32 trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\nhost replication " + Superuser + " 127.0.0.1/32 trust\n" +
		"host replication all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(i.Dir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return giveToServerUser(i.Dir)
}

// Start starts the server and waits until it accepts connections.
func (i *Instance) Start(ctx context.Context) error {
	logFile := filepath.Join(i.Dir, "server.log")
	if _, err := i.run(ctx, "pg_ctl", "-D", i.Dir, "-l", logFile, "-w", "-t", "60", "start"); err != nil {
		tail := lastLines(logFile, 10)
		return fmt.Errorf("start PostgreSQL in %s on port %d: %w\n%s", i.Dir, i.Port, err, tail)
	}
	return nil
}

// Stop stops the server; mode is "fast" or "immediate".
func (i *Instance) Stop(ctx context.Context, mode string) error {
	if mode == "" {
		mode = "fast"
	}
	if !i.Running() {
		return nil
	}
	if _, err := i.run(ctx, "pg_ctl", "-D", i.Dir, "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("stop PostgreSQL in %s: %w", i.Dir, err)
	}
	return nil
}

// Running reports whether a server runs on the data directory.
func (i *Instance) Running() bool {
	_, err := os.Stat(filepath.Join(i.Dir, "postmaster.pid"))
	return err == nil
}

// Remove stops the server if it runs and deletes the data directory.
func (i *Instance) Remove(ctx context.Context) error {
	if err := i.Stop(ctx, "immediate"); err != nil {
		return err
	}
	if err := os.RemoveAll(i.Dir); err != nil {
		return fmt.Errorf("remove %s: %w", i.Dir, err)
	}
	return nil
}

// URL returns a libpq URL for the superuser and database db.
func (i *Instance) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, i.Port, db)
}

// run runs a server binary, as user postgres when the caller is root.
func (i *Instance) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(i.BinDir, name), args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.Dir = os.TempDir()
	if err := asServerUser(cmd); err != nil {
		return "", err
	}
	if lib := LibDir(i.BinDir); lib != "" {
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(cmd.Env, "LD_LIBRARY_PATH="+lib)
	}
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// serverUser returns the uid and gid the server runs as, and false when the
// current user runs it.
func serverUser() (uid, gid int, switchUser bool, err error) {
	if os.Geteuid() != 0 {
		return 0, 0, false, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, false, errors.New("running as root, and PostgreSQL refuses root: " +
			"create the operating-system user postgres (apt-get install postgresql-15 does) or run as a normal user")
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, true, nil
}

func asServerUser(cmd *exec.Cmd) error {
	uid, gid, sw, err := serverUser()
	if err != nil || !sw {
		return err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Env = append(os.Environ(), "HOME="+os.TempDir())
	return nil
}

// giveToServerUser makes dir and everything in it belong to the server user.
func giveToServerUser(dir string) error {
	uid, gid, sw, err := serverUser()
	if err != nil || !sw {
		return err
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("give %s to user postgres: %w", p, err)
		}
		return nil
	})
}

// MkdirTemp makes a fresh directory that the server user can use, under a
// parent every user can enter.
func MkdirTemp(pattern string) (string, error) {
	dir, err := os.MkdirTemp(os.TempDir(), pattern)
	if err != nil {
		return "", fmt.Errorf("make temporary directory: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("chmod %s: %w", dir, err)
	}
	return dir, giveToServerUser(dir)
}

func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitReady waits until the server accepts TCP connections or ctx ends.
func (i *Instance) WaitReady(ctx context.Context) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(i.Port))
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for PostgreSQL on %s: %w", addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
