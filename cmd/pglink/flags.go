package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/state"
)

// linkFlags are the flags that say which link a command works on. Each
// falls back to an environment variable, so connection strings (which may
// hold passwords) need not be typed on a command line that ps can show.
type linkFlags struct {
	name, source, target string
}

func (f *linkFlags) add(c *cobra.Command, source bool) {
	c.Flags().StringVar(&f.name, "name", "", "link name: lowercase letters, digits, underscores (env PGLINK_NAME)")
	if source {
		c.Flags().StringVar(&f.source, "source", "", "source connection string, libpq URL or key=value (env PGLINK_SOURCE)")
	}
	c.Flags().StringVar(&f.target, "target", "", "target connection string, libpq URL or key=value (env PGLINK_TARGET)")
}

// resolve fills empty flags from the environment and checks that the
// required ones are there. Passwords may also come from PGPASSWORD or the
// passfile: pgx reads them when it connects.
func (f *linkFlags) resolve(c *cobra.Command, needSource bool) error {
	fromEnv(&f.name, "PGLINK_NAME")
	fromEnv(&f.source, "PGLINK_SOURCE")
	fromEnv(&f.target, "PGLINK_TARGET")
	if err := state.ValidateName(f.name); err != nil {
		return usageError{command: commandName(c), err: err}
	}
	if needSource && f.source == "" {
		return usagef(c, "no source: give --source or set PGLINK_SOURCE (a libpq URL like postgres://user@host:5432/db or key=value pairs)")
	}
	if f.target == "" {
		return usagef(c, "no target: give --target or set PGLINK_TARGET (a libpq URL like postgres://user@host:5432/db or key=value pairs)")
	}
	return nil
}

func fromEnv(v *string, env string) {
	if *v == "" {
		*v = strings.TrimSpace(os.Getenv(env))
	}
}

func commandName(c *cobra.Command) string { return strings.TrimPrefix(c.CommandPath(), "pglink ") }
