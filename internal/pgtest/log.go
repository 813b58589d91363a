package pgtest

import (
	"io"
	"strings"
	"testing"
)

// LogTo returns a writer that sends each write to t's log, as one line:
// for the loggers of the code under test.
func LogTo(t testing.TB) io.Writer { return logWriter{t} }

type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
