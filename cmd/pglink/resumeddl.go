package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/state"
)

func newResumeDDLCmd() *cobra.Command {
	var lf linkFlags
	var doApply, doSkip bool
	c := &cobra.Command{
		Use:   "resume-ddl",
		Short: "Go on past the source's schema change a link holds before: run it on the target, or leave it out",
		Long: "A link holds before a schema change of the source when started with --ddl stop, or when the\n" +
			"target refused the change. --apply runs it on the target (fix the target first if it refused it);\n" +
			"--skip leaves it out (make the change on the target by hand if it needs one). The running link\n" +
			"goes on at its next attempt.",
		Example: `  pglink resume-ddl --name shop --target "$PGLINK_TARGET" --apply`,
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := lf.resolve(c, false); err != nil {
				return err
			}
			if doApply == doSkip {
				return usagef(c, "give one of --apply and --skip")
			}
			decision := state.ResumeApply
			if doSkip {
				decision = state.ResumeSkip
			}
			h, err := resumeDDL(c.Context(), lf.target, lf.name, decision)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "link %s goes on past the schema change at %s (%s): %s\n", lf.name, h.LSN, decision, h.Statement)
			return nil
		},
	}
	lf.add(c, false)
	c.Flags().BoolVar(&doApply, "apply", false, "run the held schema change on the target")
	c.Flags().BoolVar(&doSkip, "skip", false, "leave the held schema change out")
	return c
}

func resumeDDL(ctx context.Context, target, name, decision string) (*state.HeldDDL, error) {
	if err := state.ValidateName(name); err != nil {
		return nil, err
	}
	conn, err := state.ConnectTarget(ctx, target)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return state.ResumeDDL(ctx, conn, name, decision)
}
