package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/state"
)

func newDropCmd() *cobra.Command {
	var lf linkFlags
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
			if err := state.Drop(c.Context(), lf.name, lf.source, lf.target, newLogger(c.ErrOrStderr(), false)); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "link %s dropped\n", lf.name)
			return nil
		},
	}
	lf.add(c, true)
	return c
}
