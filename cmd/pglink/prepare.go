package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/prepare"
)

// rolePasswordEnv holds the password prepare gives the link's role: never
// a flag, which ps would show.
const rolePasswordEnv = "PGLINK_ROLE_PASSWORD"

func newPrepareCmd() *cobra.Command {
	var opts prepare.Options
	var dryRun bool
	c := &cobra.Command{
		Use:   "prepare",
		Short: "Apply the safe fixes to a source: a role for the link, replica identity, wal_level",
		Long: "prepare applies to the source the fixes of pglink assess that are safe to apply, printing each\n" +
			"statement before it runs: with --role, a role for the link with LOGIN, REPLICATION and the rights a\n" +
			"link needs (its password from " + rolePasswordEnv + ", sent as a SCRAM secret and never shown); with\n" +
			"--replica-identity-full, REPLICA IDENTITY FULL on the tables without a key; and ALTER SYSTEM for\n" +
			"wal_level = logical and too few replication slots or WAL senders (they take effect when the server\n" +
			"restarts: prepare does not restart it). What it leaves to you is listed at the end with its fix.\n" +
			"--dry-run prints the statements only. Connect as a superuser. Exit 0: done; 1: a statement\n" +
			"failed; 2: usage error or the source cannot be reached.",
		Example: `  pglink prepare --source postgres://postgres@old-db/shop --role pglink --dry-run
  PGLINK_ROLE_PASSWORD=... pglink prepare --source postgres://postgres@old-db/shop --role pglink --replica-identity-full`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fromEnv(&opts.Source, "PGLINK_SOURCE")
			if opts.Source == "" {
				return usagef(c, "no source: give --source or set PGLINK_SOURCE (a libpq URL like postgres://user@host:5432/db or key=value pairs)")
			}
			opts.RolePassword = os.Getenv(rolePasswordEnv)
			return runPrepare(c.Context(), c.OutOrStdout(), opts, dryRun)
		},
	}
	f := c.Flags()
	f.StringVar(&opts.Source, "source", "", "source connection string, as a superuser (env PGLINK_SOURCE)")
	f.StringVar(&opts.Database, "database", "", "the source database to prepare, instead of the connection string's")
	f.StringVar(&opts.Role, "role", "", "create (or update) this role for the link, with the rights it needs; password from "+rolePasswordEnv)
	f.BoolVar(&opts.ReplicaIdentityFull, "replica-identity-full", false, "set REPLICA IDENTITY FULL on the tables without primary key or replica identity")
	f.StringSliceVar(&opts.Tables, "tables", nil, "tables a link would carry, as for pglink start (default: all)")
	f.StringSliceVar(&opts.ExcludeTables, "exclude-tables", nil, "tables a link would leave out, as for pglink start")
	f.BoolVar(&dryRun, "dry-run", false, "print the statements, run nothing")
	return c
}

func runPrepare(ctx context.Context, out io.Writer, opts prepare.Options, dryRun bool) error {
	conn, ep, err := prepare.Connect(ctx, opts)
	if err != nil {
		return exitCodeError{exitUsage, err}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	plan, err := prepare.Build(ctx, conn, opts)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return exitCodeError{exitUsage, fmt.Errorf("could not prepare: %w", err)}
	}
	if dryRun {
		fmt.Fprintf(out, "-- dry run: these statements would run on %s; nothing is changed\n", ep.Describe())
	} else {
		fmt.Fprintf(out, "-- on %s\n", ep.Describe())
	}
	show := func(s prepare.Step) {
		fmt.Fprintf(out, "-- %s\n%s\n", s.Why, s.SQL)
		if s.Note != "" {
			fmt.Fprintf(out, "--   note: %s\n", s.Note)
		}
	}
	if len(plan.Steps) == 0 {
		fmt.Fprintln(out, "-- nothing to apply")
	}
	if dryRun {
		for _, s := range plan.Steps {
			show(s)
		}
	} else if err := plan.Apply(ctx, conn, show); err != nil {
		return err
	}
	if len(plan.Notes) > 0 {
		fmt.Fprintln(out, "\nleft to you:")
		for _, n := range plan.Notes {
			fmt.Fprintf(out, "- %s\n", n)
		}
	}
	if !dryRun && len(plan.Steps) > 0 {
		fmt.Fprintf(out, "\n%d statements applied; pglink assess shows what is left\n", len(plan.Steps))
	}
	return nil
}
