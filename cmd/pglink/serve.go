package main

import (
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pglink/pglink/internal/link"
	"github.com/pglink/pglink/internal/serve"
)

func newServeCmd() *cobra.Command {
	var opts serve.Options
	var verbose bool
	var tokenFile string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run every link of a file in one process, with Prometheus metrics and health checks over HTTP",
		Long: "serve runs each link that the file's links: list names, as pglink start would, and starts it again when it\n" +
			"fails. SIGHUP reads the file again: new links start, removed ones stop, changed ones restart. SIGTERM or\n" +
			"Ctrl-C stops every link cleanly. /metrics, /healthz and /readyz answer on --listen.",
		Example: `  export SHOP_PASSWORD=...
  pglink serve --config links.yaml --listen 127.0.0.1:9187
  kill -HUP $(pidof pglink)   # after editing links.yaml`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if opts.ConfigPath == "" {
				return usageError{command: commandName(c), err: serve.ErrNoConfig}
			}
			fromEnv(&opts.Token, "PGLINK_TOKEN")
			if tokenFile != "" {
				if opts.Token != "" {
					return usagef(c, "--token and --token-file exclude each other")
				}
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return usagef(c, "--token-file: %v", err)
				}
				if opts.Token = strings.TrimSpace(string(b)); opts.Token == "" {
					return usagef(c, "--token-file %s is empty", tokenFile)
				}
			}
			if err := serve.CheckListen(opts.Listen, opts.Token); err != nil {
				return usageError{command: commandName(c), err: err}
			}
			opts.Logger = newLogger(c.ErrOrStderr(), verbose)
			return runServe(c, opts)
		},
	}
	f := c.Flags()
	f.StringVar(&opts.ConfigPath, "config", "", "the links file (YAML: a links: list of name, source, target and pglink start's options)")
	f.StringVar(&opts.Listen, "listen", serve.DefaultListen, "address of the metrics and health endpoints; any but loopback needs --token")
	f.StringVar(&opts.Token, "token", "", "bearer token every HTTP request must send (env PGLINK_TOKEN)")
	f.StringVar(&tokenFile, "token-file", "", "read the token from this file (keeps it out of the process list)")
	f.StringVar(&opts.TLSCert, "tls-cert", "", "serve HTTPS with this certificate (PEM), with --tls-key")
	f.StringVar(&opts.TLSKey, "tls-key", "", "the certificate's private key (PEM)")
	f.Var((*link.SizeValue)(&opts.WALWarnBytes), "wal-warn", "warn when a link's slot retains more WAL than this, like 2GB, for links whose entry sets no wal-warn (default: half of the source's max_slot_wal_keep_size, else 1GB)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log debug details")
	return c
}

// runServe serves until SIGTERM or Ctrl-C (a clean stop, exit 0); SIGHUP
// reloads the file, and a file with a mistake leaves the links as they are.
func runServe(c *cobra.Command, opts serve.Options) error {
	ctx := c.Context()
	opts.Pprof = os.Getenv("PGLINK_PPROF") == "1" // for measuring pglink itself (bench/)
	srv, err := serve.Start(ctx, opts)
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if err := srv.Reload(ctx); err != nil {
				opts.Logger.Error(err.Error())
			}
		case <-ctx.Done():
			opts.Logger.Info("stopping every link")
			srv.Close(ctx)
			return nil
		}
	}
}
