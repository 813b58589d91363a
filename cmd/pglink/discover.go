package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/discover"
)

func newDiscoverCmd() *cobra.Command {
	var opts discover.Options
	var asJSON bool
	c := &cobra.Command{
		Use:   "discover",
		Short: "Find PostgreSQL servers on hosts and ports, with their databases and whether they are ready to link",
		Long: "discover probes every host and port given, in parallel, with PostgreSQL's SSLRequest: a PostgreSQL\n" +
			"server answers it before any login. Where the login works (--user, the password from PGPASSWORD or\n" +
			"the passfile), it shows the version and each database with its size, its tables and whether\n" +
			"anything blocks a link from it (pglink assess gives the details and fixes). Ports that answer but\n" +
			"are not PostgreSQL, closed ports, silent hosts and refused logins are reported per target.\n" +
			"Hosts may be names, addresses or CIDR blocks of at most 1024 addresses. Exit 0 when the probes\n" +
			"ran, whatever they found; 2 for invalid hosts or ports.",
		Example: `  pglink discover --hosts 10.0.0.0/24 --ports 5432-5434 --user postgres
  PGPASSWORD=... pglink discover --hosts db1,db2 --json | jq '.servers[] | select(.status == "postgresql")'`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if len(opts.Hosts) == 0 {
				return usagef(c, "no hosts: give --hosts with names, addresses or CIDR blocks (e.g. 10.0.0.0/24)")
			}
			if opts.Timeout <= 0 || opts.Parallel <= 0 {
				return usagef(c, "--timeout and --parallel must be positive")
			}
			if _, err := discover.Plan(opts); err != nil {
				return usagef(c, "%v", err)
			}
			servers, err := discover.Run(c.Context(), opts)
			if err != nil {
				return err
			}
			if !asJSON {
				return discover.WriteText(c.OutOrStdout(), servers)
			}
			b, err := json.MarshalIndent(struct {
				Summary discover.Summary  `json:"summary"`
				Servers []discover.Server `json:"servers"`
			}{discover.Summarize(servers), servers}, "", "  ")
			if err != nil {
				return fmt.Errorf("encode report: %w", err)
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "%s\n", b)
			return err
		},
	}
	f := c.Flags()
	f.StringSliceVar(&opts.Hosts, "hosts", nil, "hosts to probe: names, addresses, CIDR blocks up to /22, comma-separated")
	f.StringVar(&opts.Ports, "ports", "5432", "ports to probe: numbers and ranges, e.g. 5432-5439,6432")
	f.StringVar(&opts.User, "user", "", "user to log in as where PostgreSQL is found (default PGUSER, else the system user); password from PGPASSWORD or the passfile")
	f.DurationVar(&opts.Timeout, "timeout", time.Second, "how long each probe waits for an answer")
	f.IntVar(&opts.Parallel, "parallel", 64, "probes at once")
	f.BoolVar(&asJSON, "json", false, "print the results as JSON")
	return c
}
