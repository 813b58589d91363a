package link

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/pglink/pglink/internal/stream"
)

// The stream spools large source transactions to disk (internal/stream),
// in a folder per process: two processes on one machine may run links of
// the same name (into different targets), and must not share spool files.
// A process that is killed leaves its folder, and the files of the
// transactions it was receiving, behind; the next process of the link
// removes them (the source streams those transactions again anyway).

// spoolDirPrefix begins the name of every spool folder of link name; the
// process ID follows.
func spoolDirPrefix(name string) string { return "pglink-spool-" + name + "-" }

// spoolDir is this process's spool folder for link name, in parent.
func spoolDir(parent, name string) string {
	return filepath.Join(parent, spoolDirPrefix(name)+strconv.Itoa(os.Getpid()))
}

// removeStaleSpoolDirs removes, in parent, the spool folders of link name
// whose processes no longer run, with the spool files in them, and returns
// their paths. A folder that holds anything else is left where it is.
func removeStaleSpoolDirs(parent, name string) ([]string, error) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", parent, err)
	}
	prefix := spoolDirPrefix(name)
	var removed []string
	var errs []error
	for _, e := range entries {
		pid, ok := spoolDirPID(e, prefix)
		if !ok || pid == os.Getpid() || processRuns(pid) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		if err := stream.RemoveSpoolDir(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			removed = append(removed, dir)
		}
	}
	return removed, errors.Join(errs...)
}

// spoolDirPID returns the process ID in the name of folder e when it is a
// spool folder of the link whose folders begin with prefix.
func spoolDirPID(e fs.DirEntry, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(e.Name(), prefix)
	if !ok || !e.IsDir() || rest == "" || strings.Trim(rest, "0123456789") != "" {
		return 0, false
	}
	pid, err := strconv.Atoi(rest)
	return pid, err == nil && pid > 0
}

// processRuns reports whether a process with this ID exists on this
// machine (one of another user counts).
func processRuns(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
