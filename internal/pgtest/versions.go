package pgtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pglink/pglink/internal/instance"
)

// debianMajor is the major version of the distribution's server, which
// make deps installs into instance.DefaultBinDir.
const debianMajor = 15

// BinDir returns the server binaries of a PostgreSQL major version: 0 for
// the default ones (instance.BinDir), 15 for Debian's, any other from the
// cache that make versions fills (.cache/pg/<major>/bin at the top of the
// module, or $PGLINK_PG_CACHE/<major>/bin). A version that is not there is
// an error that says how to fetch it.
func BinDir(major int) (string, error) {
	switch major {
	case 0:
		return instance.BinDir()
	case debianMajor:
		if _, err := os.Stat(filepath.Join(instance.DefaultBinDir, "pg_ctl")); err != nil {
			return "", fmt.Errorf("PostgreSQL %d server binaries not found in %s: run make deps", major, instance.DefaultBinDir)
		}
		return instance.DefaultBinDir, nil
	}
	cache, err := cacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, fmt.Sprint(major))
	if _, err := os.Stat(filepath.Join(dir, "VERIFIED")); err != nil {
		return "", fmt.Errorf("PostgreSQL %d server binaries not found in %s: run make versions (or scripts/pg-versions.sh %d) to fetch them", major, dir, major)
	}
	return filepath.Join(dir, "bin"), nil
}

// cacheDir is where make versions puts the servers of other versions.
func cacheDir() (string, error) {
	if d := os.Getenv("PGLINK_PG_CACHE"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".cache", "pg"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("pgtest: no go.mod above the working directory to find .cache/pg: set PGLINK_PG_CACHE")
		}
		dir = parent
	}
}
