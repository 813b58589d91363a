package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/instance"
)

// newInstanceCmd manages local PostgreSQL instances to try pglink with:
// logical replication on, listening on 127.0.0.1 only, superuser postgres
// without password over 127.0.0.1.
func newInstanceCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "instance",
		Short: "Create, start, stop and remove local PostgreSQL instances to try pglink with",
		Example: `  pglink instance create --dir /tmp/pg-source --port 5433
  pglink instance stop --dir /tmp/pg-source
  pglink instance remove --dir /tmp/pg-source`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef(c, "unknown instance command %q: use create, start, stop or remove", args[0])
			}
			return usagef(c, "give an instance command: create, start, stop or remove")
		},
	}
	c.AddCommand(
		instanceCmd("create", "Create an instance (initdb) in --dir and start it", true,
			func(c *cobra.Command, dir string, port int) error {
				inst, err := instance.Create(c.Context(), instance.Options{Dir: dir, Port: port})
				if err != nil {
					return err
				}
				if err := inst.Start(c.Context()); err != nil {
					return err
				}
				return printURL(c, inst, "created and started")
			}),
		instanceCmd("start", "Start the instance in --dir", false, func(c *cobra.Command, dir string, _ int) error {
			inst, err := instance.Open(dir)
			if err != nil {
				return err
			}
			if inst.Running() {
				return printURL(c, inst, "already running")
			}
			if err := inst.Start(c.Context()); err != nil {
				return err
			}
			return printURL(c, inst, "started")
		}),
		instanceCmd("stop", "Stop the instance in --dir (fast shutdown)", false, func(c *cobra.Command, dir string, _ int) error {
			inst, err := instance.Open(dir)
			if err != nil {
				return err
			}
			if err := inst.Stop(c.Context(), "fast"); err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "instance in %s stopped\n", inst.Dir)
			return err
		}),
		instanceCmd("remove", "Stop the instance in --dir and delete its data directory", false,
			func(c *cobra.Command, dir string, _ int) error {
				inst, err := instance.Open(dir)
				if err != nil {
					return err
				}
				if err := inst.Remove(c.Context()); err != nil {
					return err
				}
				_, err = fmt.Fprintf(c.OutOrStdout(), "instance in %s removed\n", inst.Dir)
				return err
			}),
	)
	return c
}

// instanceCmd builds one instance subcommand with --dir (and --port for create).
func instanceCmd(use, short string, withPort bool, do func(c *cobra.Command, dir string, port int) error) *cobra.Command {
	var dir string
	var port int
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if dir == "" {
				return usagef(c, "no data directory: give --dir")
			}
			if port < 0 || port > 65535 {
				return usagef(c, "--port %d: give a TCP port between 1 and 65535 (0: a free one)", port)
			}
			return do(c, dir, port)
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "the instance's data directory")
	if withPort {
		c.Flags().IntVar(&port, "port", 0, "TCP port on 127.0.0.1 (default: a free one)")
	}
	return c
}

func printURL(c *cobra.Command, inst *instance.Instance, what string) error {
	_, err := fmt.Fprintf(c.OutOrStdout(), "instance in %s %s, listening on 127.0.0.1:%d\n%s\n",
		inst.Dir, what, inst.Port, inst.URL("postgres"))
	return err
}
