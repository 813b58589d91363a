package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/failover"
)

// failoverFlags are pglink failover's choices.
type failoverFlags struct {
	lf                              linkFlags
	planned, forced                 bool
	cleanup, release, yes           bool
	validate, asJSON, verbose       bool
	maxLag, catchUpTimeout, timeout time.Duration
	margin                          int64
	script                          string
	reverse                         bool
}

func newFailoverCmd() *cobra.Command {
	var ff failoverFlags
	c := &cobra.Command{
		Use:   "failover",
		Short: "Hand the writes to the target: planned (no data lost) or forced (the source is gone)",
		Long: "failover runs a plan of steps, each checking its own result, with progress and a table of results.\n\n" +
			"--planned: blocks writes on the source for every role and session, waits until the target has\n" +
			"applied every transaction the source committed, optionally compares (--validate), sets the\n" +
			"target's sequences, makes the target writable and cuts the link. A step that fails before the\n" +
			"target takes writes undoes the earlier ones: the source takes writes again and the link goes on.\n" +
			"The source stays read-only unless --release-source (pglink release-source lifts it later).\n\n" +
			"--forced: for when the source is gone. Stops the link, sets sequences from the table maxima plus a\n" +
			"margin, makes the target writable at once, and reports how much may be lost.\n\n" +
			"Without --planned or --forced on a terminal, a wizard walks you through it. --script FILE writes\n" +
			"the plan as a bash script using psql and runs nothing.",
		Example: `  pglink failover --name shop --planned --validate
  pglink failover --name shop --planned --script failover.sh   # read it, run it by hand
  pglink failover --name shop --forced --yes                   # the source is gone
  pglink failover --name shop                                  # the wizard`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runFailover(c, &ff) },
	}
	ff.lf.add(c, true)
	f := c.Flags()
	f.BoolVar(&ff.planned, "planned", false, "planned failover: no transaction lost, about a second without writes")
	f.BoolVar(&ff.forced, "forced", false, "forced failover: the source is gone; make the target writable now")
	f.BoolVar(&ff.cleanup, "cleanup", false, "also drop the publication, the target's origin and the link's state (the data stays)")
	f.BoolVar(&ff.release, "release-source", false, "make the source writable again at the end (planned)")
	f.BoolVar(&ff.reverse, "reverse", false, "planned: make a reverse link from the target back to the source, which keeps it in step for a failback")
	f.DurationVar(&ff.maxLag, "max-lag", time.Second, "planned: fence the source only once the link lags less than this")
	f.DurationVar(&ff.catchUpTimeout, "catch-up-timeout", 5*time.Minute, "planned: how long to wait for the lag to fall under --max-lag before giving up")
	f.DurationVar(&ff.timeout, "timeout", time.Minute, "how long the target may take to catch up (planned)")
	f.BoolVar(&ff.validate, "validate", false, "compare source and target before the target takes writes (planned)")
	f.Int64Var(&ff.margin, "sequence-margin", 10000, "forced: added to each sequence past its column's maximum")
	f.StringVar(&ff.script, "script", "", "write the plan as a bash script to this file and run nothing")
	f.BoolVar(&ff.yes, "yes", false, "run without asking (a forced failover also counts this as the acknowledgement of possible data loss)")
	f.BoolVar(&ff.asJSON, "json", false, "print the results as JSON")
	f.BoolVarP(&ff.verbose, "verbose", "v", false, "log the link's details while it runs here")
	return c
}

func runFailover(c *cobra.Command, ff *failoverFlags) error {
	needSource := !ff.forced
	if err := ff.lf.resolve(c, needSource); err != nil {
		return err
	}
	if ff.planned && ff.forced {
		return usagef(c, "--planned and --forced exclude each other")
	}
	in := bufio.NewReader(c.InOrStdin())
	interactive := isTerminalReader(c.InOrStdin()) && isTerminal(c.ErrOrStderr())
	wizard := !ff.planned && !ff.forced
	if wizard && !interactive {
		return usagef(c, "give --planned or --forced (the wizard needs a terminal)")
	}
	if wizard {
		ok, err := failoverWizard(c, ff, in)
		if err != nil || !ok {
			return err
		}
	}
	opts := failover.Options{Name: ff.lf.name, Source: ff.lf.source, Target: ff.lf.target, Cleanup: ff.cleanup,
		ReleaseSource: ff.release, Reverse: ff.reverse, MaxLag: ff.maxLag, CatchUpTimeout: ff.catchUpTimeout, Timeout: ff.timeout, Validate: ff.validate,
		SequenceMargin: ff.margin, Kind: failover.Planned}
	if ff.forced {
		opts.Kind = failover.Forced
	}
	plan, err := failover.Build(opts)
	if err != nil {
		return usagef(c, "%v", err)
	}
	if ff.script != "" {
		if ff.reverse {
			return usagef(c, "--reverse cannot be written as a script: run the failover with pglink")
		}
		return writeScript(c, plan, ff.script)
	}
	if !wizard && !ff.yes {
		if !interactive {
			return usagef(c, "a failover changes both databases: give --yes to run it without a prompt, or --script FILE to get it as a script")
		}
		printPlan(c.ErrOrStderr(), plan)
		if err := confirm(c.ErrOrStderr(), in, plan); err != nil {
			return err
		}
	}
	return executePlan(c, plan, ff)
}

func writeScript(c *cobra.Command, plan *failover.Plan, path string) error {
	if err := os.WriteFile(path, []byte(failover.Script(plan)), 0o755); err != nil {
		return fmt.Errorf("write the script: %w", err)
	}
	fmt.Fprintf(c.ErrOrStderr(), "wrote the %s failover of link %s to %s; nothing was run.\nRun it with PGLINK_SOURCE and PGLINK_TARGET set: bash %s\n", plan.Kind, plan.Link, path, path)
	return nil
}

func printPlan(w io.Writer, plan *failover.Plan) {
	fmt.Fprintf(w, "\nThe %s failover of link %s, step by step:\n", plan.Kind, plan.Link)
	for i, st := range plan.Steps {
		fmt.Fprintf(w, "  %d. %s (%s)\n     %s\n", i+1, st.Title, st.Side, st.What)
	}
	fmt.Fprintln(w)
}

// confirm asks before a run; a forced failover needs the user to type
// the link's name, acknowledging that data may be lost.
func confirm(w io.Writer, in *bufio.Reader, plan *failover.Plan) error {
	if plan.Kind == failover.Forced {
		fmt.Fprintf(w, "A forced failover may lose the transactions the target has not applied.\nType the link's name (%s) to acknowledge and run it: ", plan.Link)
		if ans := readLine(in); ans != plan.Link {
			return errors.New("cancelled: nothing was changed")
		}
		return nil
	}
	fmt.Fprint(w, "Run it now? [y/N] ")
	if ans := strings.ToLower(readLine(in)); ans != "y" && ans != "yes" {
		return errors.New("cancelled: nothing was changed")
	}
	return nil
}

func readLine(in *bufio.Reader) string {
	s, _ := in.ReadString('\n')
	return strings.TrimSpace(s)
}

func executePlan(c *cobra.Command, plan *failover.Plan, ff *failoverFlags) error {
	w := c.ErrOrStderr()
	plan.Opts.Logger = newLogger(w, ff.verbose)
	if !ff.verbose {
		plan.Opts.Logger = newLogger(io.Discard, false)
	}
	plan.Opts.Progress = func(e failover.Event) {
		switch e.State {
		case failover.StepRunning:
			if e.Detail != "" {
				fmt.Fprintf(w, "[%d/%d] %s: %s\n", e.Index, e.Of, e.Step.Title, e.Detail)
				return
			}
			fmt.Fprintf(w, "[%d/%d] %s ...\n", e.Index, e.Of, e.Step.Title)
		case failover.StepDone:
			fmt.Fprintf(w, "[%d/%d] %s: done in %s: %s\n", e.Index, e.Of, e.Step.Title, e.Took.Round(time.Millisecond), e.Detail)
		default:
			fmt.Fprintf(w, "[%d/%d] %s: %s %s\n", e.Index, e.Of, e.Step.Title, e.State, e.Detail)
		}
	}
	res, err := failover.Run(c.Context(), plan)
	if ff.asJSON {
		enc := json.NewEncoder(c.OutOrStdout())
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(res); jerr != nil {
			return jerr
		}
	} else {
		fmt.Fprintln(c.OutOrStdout())
		if werr := res.WriteTable(c.OutOrStdout()); werr != nil {
			return werr
		}
	}
	return err
}

func newReleaseSourceCmd() *cobra.Command {
	var source string
	c := &cobra.Command{
		Use:   "release-source",
		Short: "Make a source that a planned failover left read-only take writes again",
		Long: "release-source removes the write fence a planned failover put on the old source database (its\n" +
			"read-only default and the triggers in schema pglink_fence). Only do this when no application\n" +
			"writes to the old source by mistake: the link is gone, and those writes would not reach the target.",
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fromEnv(&source, "PGLINK_SOURCE")
			if source == "" {
				return usagef(c, "no source: give --source or set PGLINK_SOURCE")
			}
			if err := failover.ReleaseSource(c.Context(), source); err != nil {
				return err
			}
			fmt.Fprintln(c.OutOrStdout(), "the source takes writes again")
			return nil
		},
	}
	c.Flags().StringVar(&source, "source", "", "source connection string (env PGLINK_SOURCE)")
	return c
}

func newFenceSourceCmd() *cobra.Command {
	var lf linkFlags
	c := &cobra.Command{
		Use:   "fence-source",
		Short: "Make an old source that came back after a forced failover refuse writes",
		Long: "fence-source makes the old source database refuse writes from every role and session (as a planned\n" +
			"failover does), ends its sessions, and drops the link's replication slots there, which would\n" +
			"otherwise keep its WAL forever. Run it as soon as an old source comes back after a forced failover.",
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fromEnv(&lf.name, "PGLINK_NAME")
			fromEnv(&lf.source, "PGLINK_SOURCE")
			if lf.source == "" {
				return usagef(c, "no source: give --source or set PGLINK_SOURCE")
			}
			done, err := failover.FenceSource(c.Context(), lf.name, lf.source)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "the old source refuses writes: %s\n", done)
			return nil
		},
	}
	c.Flags().StringVar(&lf.name, "name", "", "link name (env PGLINK_NAME)")
	c.Flags().StringVar(&lf.source, "source", "", "the old source's connection string (env PGLINK_SOURCE)")
	return c
}

// isTerminalReader reports whether r is a terminal the user types into.
func isTerminalReader(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && isTerminal(f)
}
