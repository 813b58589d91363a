package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/validate"
)

// exitCodeError carries the exit code a command chose.
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string { return e.err.Error() }
func (e exitCodeError) Unwrap() error { return e.err }

// Exit codes of pglink validate.
const (
	exitDifferent   = 1 // the comparison found a difference
	exitNotCompared = 2 // the comparison could not be made
)

func newValidateCmd() *cobra.Command {
	var lf linkFlags
	var tables []string
	var asJSON, quick bool
	var maxRows, jobs int
	c := &cobra.Command{
		Use:   "validate",
		Short: "Prove that source and target hold the same data, at one consistent point",
		Long: "validate compares the link's tables at one point: a source snapshot, and the target when it has\n" +
			"applied exactly the source's transactions before it (the running link pauses for that moment; the\n" +
			"source's writes never stop). Each table is cut into chunks by key; both servers hash each chunk and\n" +
			"only the hashes cross the network; differing chunks are compared row by row and their keys listed.\n" +
			"A table without a key is compared as a multiset of rows. Sequence values are information only:\n" +
			"the link sets them at failover. Exit 0: identical; 1: a difference was found; 2: the comparison\n" +
			"could not be made.",
		Example: `  pglink validate --name shop --source "$PGLINK_SOURCE" --target "$PGLINK_TARGET"
  pglink validate --name shop --tables 'shop.*' --json`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := lf.resolve(c, true); err != nil {
				return err
			}
			opts := validate.LinkOptions{Name: lf.name, Source: lf.source, Target: lf.target, Quick: quick,
				MaxRows: maxRows, Jobs: jobs, Tables: tables}
			opts.Progress = validationProgress(c.ErrOrStderr(), asJSON)
			rep, err := validate.Link(c.Context(), opts)
			if err != nil {
				return exitCodeError{exitNotCompared, fmt.Errorf("could not compare: %w", err)}
			}
			if err := printValidation(c, rep, asJSON); err != nil {
				return exitCodeError{exitNotCompared, err}
			}
			if !rep.Equal() {
				return exitCodeError{exitDifferent, errors.New("source and target differ (see above)")}
			}
			return nil
		},
	}
	lf.add(c, true)
	c.Flags().StringSliceVar(&tables, "tables", nil, "compare only these of the link's tables (comma-separated patterns)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	c.Flags().BoolVar(&quick, "quick", false, "compare row counts only")
	c.Flags().IntVar(&maxRows, "max-rows", 20, "differing keys listed per table")
	c.Flags().IntVar(&jobs, "jobs", 2, "parallel comparison jobs (each holds one session per side)")
	return c
}

// validationProgress shows on a terminal the chunks compared of each table
// as one line redrawn in place, and a line per finished table; elsewhere a
// line per finished table, unless the report goes out as JSON. Jobs call it
// at the same time.
func validationProgress(w io.Writer, asJSON bool) func(validate.TableProgress) {
	tty := isTerminal(w)
	if !tty && asJSON {
		return nil
	}
	var mu sync.Mutex
	return func(p validate.TableProgress) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case p.Done:
			if tty {
				fmt.Fprint(w, "\r\033[K")
			}
			fmt.Fprintf(w, "compared %s (%s): %d rows, %d differences\n", p.Table, p.Method, p.Rows, p.Diffs)
		case tty:
			fmt.Fprintf(w, "\r\033[Kcomparing %s: chunk %d of %d, %d rows, %d differences", p.Table, p.ChunksDone, p.Chunks, p.Rows, p.Diffs)
		}
	}
}

func printValidation(c *cobra.Command, rep validate.Report, asJSON bool) error {
	if !asJSON {
		return rep.WriteTable(c.OutOrStdout())
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	_, err = fmt.Fprintf(c.OutOrStdout(), "%s\n", b)
	return err
}
