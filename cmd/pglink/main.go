// Command pglink runs online migration links between PostgreSQL databases.
// This package holds flags and output only; the work is in internal/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1   // the command failed
	exitUsage       = 2   // bad flags or arguments, or missing values
	exitInterrupted = 130 // stopped by SIGINT, SIGTERM or SIGHUP before it could finish (128 + SIGINT)
)

func main() {
	tuneGC(os.Getenv)
	// Ctrl-C, SIGTERM or a hang-up (the terminal or the SSH session that
	// ran pglink closed) cancels the context: commands stop cleanly (a
	// link releases its lease, a failover undoes its steps, the demo
	// removes its instances) and return, where the hang-up's default
	// action would kill the process half-way.
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals(os.Args[1:])...)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	stopProfiles()
	os.Exit(code)
}

// stopSignals are the signals that stop a command. pglink serve is a
// service with no terminal to lose: a hang-up tells it to reload its file.
func stopSignals(args []string) []os.Signal {
	if len(args) > 0 && args[0] == "serve" {
		return []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	}
	return []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}
}

// run executes one command line and returns the exit code. Errors go to
// stderr as one paragraph.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	prefix := "pglink: "
	if ctx.Err() != nil { // Ctrl-C: the error says what was under way
		prefix = "pglink: interrupted: "
	}
	fmt.Fprintf(stderr, "%s%s\n", prefix, paragraph(err.Error()))
	var usage usageError
	var coded exitCodeError
	switch {
	case errors.As(err, &coded):
		return coded.code
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "Run 'pglink %s --help' for usage.\n", usage.command)
		return exitUsage
	case strings.HasPrefix(err.Error(), "unknown command"): // cobra's own, for the root command
		fmt.Fprintln(stderr, "Run 'pglink --help' for usage.")
		return exitUsage
	case ctx.Err() != nil:
		return exitInterrupted
	}
	return exitError
}

// paragraph keeps a multi-line error readable as one block: continuation
// lines are indented under the first.
func paragraph(msg string) string {
	return strings.ReplaceAll(strings.TrimSpace(msg), "\n", "\n  ")
}

// usageError is a mistake in the command line: exit code 2 and a pointer
// to the help.
type usageError struct {
	command string
	err     error
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
