package link

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// TestRemoveStaleSpoolDirs: the spool folders of link app whose processes
// have ended go, with their spool files; a running process's folder, other
// links' folders and anything that is not a spool file stay.
func TestRemoveStaleSpoolDirs(t *testing.T) {
	ended := exec.Command("true")
	if err := ended.Run(); err != nil {
		t.Fatal(err)
	}
	dead := strconv.Itoa(ended.Process.Pid)
	parent := t.TempDir()
	mk := func(dir string, files ...string) string {
		t.Helper()
		p := filepath.Join(parent, dir)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(p, f), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	stale := mk("pglink-spool-app-"+dead, "7.pglink-spool", "9.pglink-spool")
	mixed := mk("pglink-spool-app-1"+dead, "7.pglink-spool", "notes.txt") // assumes no process 1<dead> runs
	running := mk("pglink-spool-app-"+strconv.Itoa(os.Getppid()), "7.pglink-spool")
	own := mk("pglink-spool-app-"+strconv.Itoa(os.Getpid()), "7.pglink-spool")
	other := mk("pglink-spool-app_2-"+dead, "7.pglink-spool")
	odd := mk("pglink-spool-app-"+dead+"x", "7.pglink-spool")
	if err := os.WriteFile(filepath.Join(parent, "pglink-spool-app-2"+dead), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	removed, err := removeStaleSpoolDirs(parent, "app")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{stale}) {
		t.Errorf("removed %q, want only %q", removed, stale)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("%s still there (%v)", stale, err)
	}
	if _, err := os.Stat(filepath.Join(mixed, "7.pglink-spool")); !os.IsNotExist(err) {
		t.Errorf("the spool file in %s is still there (%v)", mixed, err)
	}
	for _, p := range []string{filepath.Join(mixed, "notes.txt"), filepath.Join(running, "7.pglink-spool"),
		filepath.Join(own, "7.pglink-spool"), filepath.Join(other, "7.pglink-spool"), filepath.Join(odd, "7.pglink-spool"),
		filepath.Join(parent, "pglink-spool-app-2"+dead)} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s should stay: %v", p, err)
		}
	}
}
