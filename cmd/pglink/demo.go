package main

import (
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/demo"
)

func newDemoCmd() *cobra.Command {
	var opts demo.Options
	var verbose bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Show pglink end to end on two throwaway local instances",
		Long: "demo creates a source and a target instance in a temporary directory, fills the source with a\n" +
			"sample shop, writes to it while a link seeds and streams into the target, stops the writes, waits\n" +
			"until the target has caught up, compares both sides row by row, and removes everything. It exits\n" +
			"non-zero if anything differs. Needs the PostgreSQL 15 server binaries (make deps installs them).",
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if opts.Scale < 1 {
				return usagef(c, "--scale %d: give a positive size", opts.Scale)
			}
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			opts.Out = c.OutOrStdout()
			opts.Logger = slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			return demo.Run(c.Context(), opts)
		},
	}
	c.Flags().IntVar(&opts.Scale, "scale", demo.DefaultScale, "shop size: about 13.5 rows per unit")
	c.Flags().IntVar(&opts.Clients, "clients", 4, "workload sessions writing to the source")
	c.Flags().DurationVar(&opts.Live, "live", 15*time.Second, "how long to show live replication under the workload")
	c.Flags().StringVar(&opts.UI, "ui", "", "run the link under pglink serve with its dashboard at this address (like 127.0.0.1:9187) until Ctrl-C, and fail it over from the browser")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the link's log")
	return c
}
