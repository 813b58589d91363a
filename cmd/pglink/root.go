package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "pglink",
		Short: "Online migration links between PostgreSQL databases",
		Long: "pglink seeds a target PostgreSQL database from a source with a consistent copy, then keeps it\n" +
			"in sync through logical replication until you fail over.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newAssessCmd(), newDiscoverCmd(), newPrepareCmd())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{command: commandName(c), err: err}
	})
	root.AddCommand(newStartCmd(), newServeCmd(), newStatusCmd(), newDropCmd(), newResumeDDLCmd(), newValidateCmd(), newFailoverCmd(), newReleaseSourceCmd(), newFenceSourceCmd(), newInstanceCmd(), newDemoCmd(), newVersionCmd())
	return root
}

// usagef returns a usage error of command c.
func usagef(c *cobra.Command, format string, args ...any) error {
	return usageError{command: commandName(c), err: fmt.Errorf(format, args...)}
}

// noArgs refuses positional arguments as a usage error.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef(c, "unexpected argument %q: %s takes flags only", args[0], c.CommandPath())
	}
	return nil
}

// isTerminal reports whether w is a terminal, where drawing with ANSI
// escapes is welcome.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newLogger logs as text lines to w (stderr): one key=value line per event.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
