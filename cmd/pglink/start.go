package main

import (
	"context"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/link"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/termui"
)

func newStartCmd() *cobra.Command {
	var lf linkFlags
	var cfg link.Config
	var verbose bool
	c := &cobra.Command{
		Use:   "start",
		Short: "Create a link (or resume it), seed the target, then keep it in sync until Ctrl-C",
		Example: `  export PGLINK_SOURCE='postgres://pglink@old-db:5432/shop'
  export PGLINK_TARGET='postgres://postgres@new-db:5432/shop'
  pglink start --name shop --jobs 8 --exclude-tables 'audit.*'`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := lf.resolve(c, true); err != nil {
				return err
			}
			if cfg.Schema != link.SchemaCopy && cfg.Schema != link.SchemaExisting {
				return usagef(c, "--schema %q: use copy (pg_dump the schema into the target) or existing (the target holds the tables)", cfg.Schema)
			}
			if cfg.Jobs < 0 {
				return usagef(c, "--jobs %d: give a positive number of parallel copy jobs (0: one per CPU)", cfg.Jobs)
			}
			if cfg.ApplySessions != 1 && cfg.ApplySessions != 2 {
				return usagef(c, "--apply-sessions %d: give 1 or 2", cfg.ApplySessions)
			}
			if cfg.DDL != "" {
				if err := state.ValidDDLMode(cfg.DDL); err != nil {
					return usagef(c, "%v", err)
				}
			}
			cfg.Name, cfg.Source, cfg.Target = lf.name, lf.source, lf.target
			return runLink(c.Context(), c.ErrOrStderr(), cfg, verbose)
		},
	}
	lf.add(c, true)
	f := c.Flags()
	f.StringSliceVar(&cfg.Tables, "tables", nil, "tables to link, comma-separated schema.table or table patterns, * allowed (default: all)")
	f.StringSliceVar(&cfg.ExcludeTables, "exclude-tables", nil, "tables to leave out, same patterns as --tables")
	f.IntVar(&cfg.Jobs, "jobs", 0, "parallel copy jobs while seeding (0: one per CPU)")
	f.IntVar(&cfg.ApplySessions, "apply-sessions", 2, "target sessions the apply uses, 1 or 2: each takes one of the target's replication origin entries (max_replication_slots)")
	f.StringVar(&cfg.Schema, "schema", link.SchemaCopy, "copy: copy the schema with pg_dump; existing: the target already holds the tables (pglink empties them before it copies)")
	f.BoolVar(&cfg.TruncateExisting, "truncate-existing", false, "with --schema existing: empty target tables that hold rows (refused otherwise)")
	f.StringVar(&cfg.DDL, "ddl", "", "the source's schema changes: replicate (carry them to the target in order; the default for a new link), stop (hold the link at each until pglink resume-ddl) or ignore; default for a link that exists: keep its mode")
	f.BoolVarP(&verbose, "verbose", "v", false, "log debug details")
	return c
}

// runLink runs the link with seeding progress drawn as bars on a terminal,
// or logged every few seconds otherwise. Ctrl-C is a clean stop.
func runLink(ctx context.Context, stderr io.Writer, cfg link.Config, verbose bool) error {
	progressCtx, stopProgress := context.WithCancel(context.Background())
	done := make(chan struct{})
	if isTerminal(stderr) {
		bars := termui.NewBars(stderr)
		cfg.Logger = newLogger(bars.Log(), verbose)
		cfg.Progress = bars.Report
		go func() { defer close(done); bars.Run(progressCtx) }()
	} else {
		cfg.Logger = newLogger(stderr, verbose)
		lp := termui.NewLogProgress(cfg.Logger, 5*time.Second)
		cfg.Progress = lp.Report
		go func() { defer close(done); lp.Run(progressCtx) }()
	}
	err := link.Run(ctx, cfg)
	stopProgress()
	<-done
	return err
}
