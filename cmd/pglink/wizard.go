package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/failover"
	"github.com/pglink/pglink/internal/status"
)

// failoverWizard walks the user through a failover on a terminal: the
// link's state, the kind of failover, the clean-up, a summary of the plan,
// then run, save as a script, or cancel. It reports false when the user
// cancelled or saved a script (nothing more to do).
func failoverWizard(c *cobra.Command, ff *failoverFlags, in *bufio.Reader) (bool, error) {
	w := c.ErrOrStderr()
	st, err := status.Read(c.Context(), ff.lf.name, ff.lf.target, ff.lf.source)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(w, "Link %s is %s", st.Name, st.Phase)
	if st.LagSeconds != nil {
		fmt.Fprintf(w, ", lag %.1f s", *st.LagSeconds)
	}
	if st.Running {
		fmt.Fprint(w, ", run by a pglink process")
	} else {
		fmt.Fprint(w, ", no process runs it (a planned failover runs it here while it catches up)")
	}
	fmt.Fprintln(w, ".")
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "Warning: %s\n", warn)
	}
	fmt.Fprint(w, "\nWhich failover?\n  p  planned: the source stops taking writes, the target catches up exactly, nothing is lost\n  f  forced: the source is gone; the target takes writes now and may miss the last transactions\n  c  cancel\n> ")
	switch strings.ToLower(readLine(in)) {
	case "p", "planned":
		ff.planned = true
		fmt.Fprint(w, "Compare every row before the target takes writes (longer downtime)? [y/N] ")
		ff.validate = yes(readLine(in))
		fmt.Fprint(w, "Keep the source in step for a failback (a reverse link from the target back to it)? [y/N] ")
		ff.reverse = yes(readLine(in))
	case "f", "forced":
		fmt.Fprint(w, "A forced failover may lose the transactions the target has not applied.\nType the link's name to acknowledge: ")
		if readLine(in) != ff.lf.name {
			return false, errors.New("cancelled: nothing was changed")
		}
		ff.forced = true
	default:
		return false, errors.New("cancelled: nothing was changed")
	}
	fmt.Fprint(w, "Also remove the publication, the origins and the link's state (the data stays)? [y/N] ")
	ff.cleanup = yes(readLine(in))
	opts := failover.Options{Name: ff.lf.name, Source: ff.lf.source, Target: ff.lf.target, Cleanup: ff.cleanup,
		Reverse: ff.reverse, MaxLag: ff.maxLag, CatchUpTimeout: ff.catchUpTimeout, Timeout: ff.timeout, Validate: ff.validate, SequenceMargin: ff.margin, Kind: failover.Planned}
	if ff.forced {
		opts.Kind = failover.Forced
	}
	plan, err := failover.Build(opts)
	if err != nil {
		return false, err
	}
	printPlan(w, plan)
	fmt.Fprint(w, "r  run it now\ns  save it as a script and run nothing\nc  cancel\n> ")
	switch strings.ToLower(readLine(in)) {
	case "r", "run":
		ff.yes = true
		return true, nil
	case "s", "save":
		if ff.reverse {
			return false, errors.New("a failover with a reverse link cannot be written as a script: nothing was changed")
		}
		fmt.Fprint(w, "File name [failover.sh]: ")
		path := readLine(in)
		if path == "" {
			path = "failover.sh"
		}
		return false, writeScript(c, plan, path)
	}
	return false, errors.New("cancelled: nothing was changed")
}

func yes(s string) bool {
	s = strings.ToLower(s)
	return s == "y" || s == "yes"
}
