package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/instance"
)

// Standby makes a physical standby of c from a copy of its data directory
// (the builds of other versions have no pg_basebackup): c is stopped
// cleanly, copied, and started again; the copy starts with standby.signal,
// streaming from c through its physical slot slot (created here), with
// primary_conninfo naming database db (slot synchronization needs one) and
// settings on top. The standby is stopped and removed when the test ends.
func (c *Cluster) Standby(t testing.TB, slot, db string, settings map[string]string) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.Exec("postgres", fmt.Sprintf("SELECT pg_create_physical_replication_slot('%s', true)", slot))
	if err := c.Stop(ctx, "fast"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	parent, err := instance.MkdirTemp("pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "data")
	if out, err := exec.CommandContext(ctx, "cp", "-a", c.Dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("pgtest: copy %s: %v: %s", c.Dir, err, out)
	}
	port, err := instance.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	conf := map[string]string{
		"port":              strconv.Itoa(port),
		"primary_conninfo":  fmt.Sprintf("'host=127.0.0.1 port=%d user=%s dbname=%s'", c.Port, instance.Superuser, db),
		"primary_slot_name": "'" + slot + "'",
	}
	var b strings.Builder
	for k, v := range merged(conf, settings) {
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	// postgresql.auto.conf is read last: its port wins over pglink.conf's.
	writeLike(t, filepath.Join(dir, "postgresql.auto.conf"), []byte(b.String()), dir)
	writeLike(t, filepath.Join(dir, "standby.signal"), nil, dir)
	os.Remove(filepath.Join(dir, "server.log"))
	standby := &instance.Instance{Dir: dir, Port: port, BinDir: c.BinDir}
	for _, inst := range []*instance.Instance{c.Instance, standby} {
		if err := inst.Start(ctx); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := standby.Stop(ctx, "immediate"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
		os.RemoveAll(parent)
	})
	return &Cluster{Instance: standby, t: t}
}

// writeLike writes a file owned as dir is (the server's user).
func writeLike(t testing.TB, path string, data []byte, dir string) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err := os.Chown(path, int(st.Uid), int(st.Gid)); err != nil {
			t.Fatal(err)
		}
	}
}
