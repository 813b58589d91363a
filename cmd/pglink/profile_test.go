package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestProfilesWritten(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	t.Setenv("PGLINK_CPUPROFILE", cpu)
	t.Setenv("PGLINK_MEMPROFILE", mem)
	stop := startProfiles()
	_ = make([]byte, 1<<20)
	stop()
	for _, p := range []string{cpu, mem} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() == 0 {
			t.Errorf("%s is empty", p)
		}
	}
}

func TestProfilesOffByDefault(t *testing.T) {
	t.Setenv("PGLINK_CPUPROFILE", "")
	t.Setenv("PGLINK_MEMPROFILE", "")
	startProfiles()() // nothing to start, nothing to write
}
