package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/link"
	"github.com/pglink/pglink/internal/status"
	"github.com/pglink/pglink/internal/termui"
)

func newStatusCmd() *cobra.Command {
	var lf linkFlags
	var asJSON, watch bool
	var walWarn link.SizeValue
	c := &cobra.Command{
		Use:   "status",
		Short: "Show a link's phase, seeding progress, positions, lag and last error",
		Long: "status reads the link's state from the target (and, with --source, the source's WAL position\n" +
			"and slot). It works from any machine, whether or not a pglink process runs the link.",
		Example: `  pglink status --name shop --target "$PGLINK_TARGET" --source "$PGLINK_SOURCE"
  pglink status --name shop --json | jq .lag_bytes
  pglink status --name shop --watch`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := lf.resolve(c, false); err != nil {
				return err
			}
			show := func(ctx context.Context) error { return showStatus(ctx, c.OutOrStdout(), lf, int64(walWarn), asJSON) }
			if !watch {
				return show(c.Context())
			}
			return watchStatus(c.Context(), c.OutOrStdout(), show)
		},
	}
	lf.add(c, true)
	c.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON (stable field names)")
	c.Flags().BoolVar(&watch, "watch", false, "refresh every second until Ctrl-C")
	c.Flags().Var(&walWarn, "wal-warn", "warn when the slot retains more WAL than this, like 2GB (default: half of the source's max_slot_wal_keep_size, else 1GB)")
	return c
}

func showStatus(ctx context.Context, out io.Writer, lf linkFlags, walWarn int64, asJSON bool) error {
	st, err := status.ReadWAL(ctx, lf.name, lf.target, lf.source, walWarn)
	if err != nil {
		return err
	}
	if asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return fmt.Errorf("encode status: %w", err)
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	}
	return termui.Status(out, st)
}

// watchStatus shows the status every second until ctx ends (Ctrl-C), which
// is a normal end. On a terminal each refresh replaces the previous one.
func watchStatus(ctx context.Context, out io.Writer, show func(context.Context) error) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if isTerminal(out) {
			fmt.Fprint(out, "\x1b[H\x1b[2J") // cursor home, clear screen
		}
		if err := show(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
