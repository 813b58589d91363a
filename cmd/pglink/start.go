package main

import (
	"context"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/link"
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
			if err := cfg.Check(); err != nil {
				return usageError{command: commandName(c), err: err}
			}
			cfg.Name, cfg.Source, cfg.Target = lf.name, lf.source, lf.target
			return runLink(c.Context(), c.ErrOrStderr(), cfg, verbose)
		},
	}
	lf.add(c, true)
	link.AddFlags(c.Flags(), &cfg)
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "log debug details")
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
