// Package pgdump finds a pg_dump that can dump a given server: pg_dump
// refuses servers of a newer major version ("aborting because of server
// version mismatch"). Seeding runs the one it finds; assess and the start
// of a link check that there is one before anything is created.
package pgdump

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// pgBinGlob is searched after $PGLINK_PGBIN and $PATH: Debian and Ubuntu
// install every major version side by side there.
const pgBinGlob = "/usr/lib/postgresql/*/bin"

// NotFoundError says that no pg_dump can dump a server of major version
// Want; Seen lists those found ("path (version N)"), if any.
type NotFoundError struct {
	Want int
	Seen []string
}

func (e *NotFoundError) Error() string {
	if len(e.Seen) == 0 {
		return fmt.Sprintf("pg_dump not found: install the PostgreSQL %d client (e.g. apt-get install postgresql-client-%d) or set PGLINK_PGBIN to its bin directory", e.Want, e.Want)
	}
	return fmt.Sprintf("the source server is PostgreSQL %d and pg_dump must be at least as new, but only %s was found: install the PostgreSQL %d client or set PGLINK_PGBIN",
		e.Want, strings.Join(e.Seen, ", "), e.Want)
}

// Find returns a pg_dump not older than the server it dumps
// (serverVersionNum as server_version_num). It prefers $PGLINK_PGBIN, then
// $PATH, then the newest /usr/lib/postgresql/N/bin. When none is new
// enough, the error is a *NotFoundError.
func Find(ctx context.Context, serverVersionNum int) (string, error) {
	var candidates []string
	if dir := os.Getenv("PGLINK_PGBIN"); dir != "" {
		candidates = append(candidates, filepath.Join(dir, "pg_dump"))
	}
	if p, err := exec.LookPath("pg_dump"); err == nil {
		candidates = append(candidates, p)
	}
	dirs, _ := filepath.Glob(pgBinGlob)
	sort.Slice(dirs, func(i, j int) bool { return dirMajor(dirs[i]) > dirMajor(dirs[j]) })
	for _, d := range dirs {
		candidates = append(candidates, filepath.Join(d, "pg_dump"))
	}
	want := serverVersionNum / 10000
	nf := &NotFoundError{Want: want}
	for _, c := range candidates {
		major, err := Major(ctx, c)
		if err != nil {
			continue
		}
		if major >= want {
			return c, nil
		}
		nf.Seen = append(nf.Seen, fmt.Sprintf("%s (version %d)", c, major))
	}
	return "", nf
}

func dirMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

var toolVersionRE = regexp.MustCompile(`\) (\d+)(?:\.(\d+))?`)

// Major runs "tool --version" ("pg_dump (PostgreSQL) 15.18 (Debian...)")
// and returns its major version.
func Major(ctx context.Context, path string) (int, error) {
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return 0, err
	}
	m := toolVersionRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("unexpected version output %q", out)
	}
	return strconv.Atoi(string(m[1]))
}
