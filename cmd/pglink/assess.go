package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/link"
)

// Exit codes of pglink assess.
const (
	exitBlocked     = 1 // something blocks a link
	exitNotAssessed = 2 // the source could not be assessed (or a usage error)
)

const bytesPerMegabyte = 1 << 20

func newAssessCmd() *cobra.Command {
	var opts assess.Options
	var asJSON bool
	var copyRateMB float64
	c := &cobra.Command{
		Use:   "assess",
		Short: "Check whether a source (and a target) can be linked: every finding with its severity and fix",
		Long: "assess runs the checks pglink start runs, and more, and prints each finding: its severity\n" +
			"(blocker: start refuses; warning: read it before relying on the link; info), what was found and\n" +
			"the exact fix. With --target it compares the target with the source; with --sample it measures the\n" +
			"source's write rate and estimates seeding time, the WAL the slot holds meanwhile and the target's\n" +
			"size. Exit 0: nothing blocks; 1: something blocks; 2: the source could not be assessed.",
		Example: `  pglink assess --source "$PGLINK_SOURCE"
  pglink assess --source postgres://postgres@old-db/shop --target postgres://postgres@new-db/shop --sample 30s
  pglink assess --json | jq '.findings[] | select(.severity == "blocker")'`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fromEnv(&opts.Source, "PGLINK_SOURCE")
			fromEnv(&opts.Target, "PGLINK_TARGET")
			if opts.Source == "" {
				return usagef(c, "no source: give --source or set PGLINK_SOURCE (a libpq URL like postgres://user@host:5432/db or key=value pairs)")
			}
			if opts.Schema != link.SchemaCopy && opts.Schema != link.SchemaExisting {
				return usagef(c, "--schema %q: use copy or existing, as for pglink start", opts.Schema)
			}
			if opts.Sample < 0 || copyRateMB < 0 || opts.Jobs < 0 {
				return usagef(c, "--sample, --copy-rate and --jobs cannot be negative")
			}
			opts.CopyRate = copyRateMB * bytesPerMegabyte
			opts.OnSample = func(d time.Duration) {
				fmt.Fprintf(c.ErrOrStderr(), "sampling the source's write rate for %s...\n", d)
			}
			rep, err := assess.Run(c.Context(), opts)
			if err != nil {
				if c.Context().Err() != nil {
					return err
				}
				return exitCodeError{exitNotAssessed, fmt.Errorf("could not assess the source: %w", err)}
			}
			out := c.OutOrStdout()
			if asJSON {
				err = rep.WriteJSON(out)
			} else {
				err = rep.WriteText(out)
			}
			if err != nil {
				return err
			}
			if rep.Blocked() {
				return exitCodeError{exitBlocked, fmt.Errorf("%d blockers: pglink start would refuse to start (see above)", rep.Blockers)}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&opts.Source, "source", "", "source connection string, libpq URL or key=value (env PGLINK_SOURCE)")
	f.StringVar(&opts.Target, "target", "", "target connection string, to compare it with the source (env PGLINK_TARGET)")
	f.StringVar(&opts.Database, "database", "", "the source database to assess, instead of the connection string's")
	f.StringSliceVar(&opts.Tables, "tables", nil, "tables a link would carry, as for pglink start (default: all)")
	f.StringSliceVar(&opts.ExcludeTables, "exclude-tables", nil, "tables a link would leave out, as for pglink start")
	f.StringVar(&opts.Schema, "schema", link.SchemaCopy, "the --schema pglink start would get: copy or existing")
	f.BoolVar(&opts.TruncateExisting, "truncate-existing", false, "the --truncate-existing pglink start would get")
	f.DurationVar(&opts.Sample, "sample", 0, "measure the source's write rate for this long (e.g. 30s) and estimate seeding and sizes")
	f.Float64Var(&copyRateMB, "copy-rate", assess.DefaultCopyRate/bytesPerMegabyte, "copy throughput in MB/s that the estimate assumes (all jobs together)")
	f.IntVar(&opts.Jobs, "jobs", 4, "parallel copy jobs that the estimate assumes")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return c
}
