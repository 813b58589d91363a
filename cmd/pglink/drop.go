package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/failover"
)

func newDropCmd() *cobra.Command {
	var lf linkFlags
	var release bool
	c := &cobra.Command{
		Use:   "drop",
		Short: "Remove a link: its slot and publication on the source, its origin and state on the target",
		Long: "drop removes what the link made on both sides. The target's tables and data stay. Stop the\n" +
			"pglink start process first: a running link holds a lease and cannot be dropped.",
		Example: `  pglink drop --name shop --source "$PGLINK_SOURCE" --target "$PGLINK_TARGET"`,
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := lf.resolve(c, true); err != nil {
				return err
			}
			said, err := failover.Drop(c.Context(), lf.name, lf.source, lf.target, release, newLogger(c.ErrOrStderr(), false))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "link %s dropped\n", lf.name)
			if said != "" {
				fmt.Fprintln(c.OutOrStdout(), said)
			}
			return nil
		},
	}
	lf.add(c, true)
	c.Flags().BoolVar(&release, "release-source", false, "also make the target writable (for a reverse link: its target is the old source of a failover, fenced until then)")
	return c
}
