package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// PglinkBinary builds the pglink command once per test binary, without
// the race detector, so tests can run it as a child process, kill it with
// SIGKILL and measure its memory. A package that calls it removes the
// build with RemovePglinkBinary from its TestMain.
func PglinkBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pglink-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "pglink")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/pglink/pglink/cmd/pglink").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// RemovePglinkBinary removes what PglinkBinary built, if anything.
func RemovePglinkBinary() {
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}
