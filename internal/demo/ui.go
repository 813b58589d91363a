package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pglink/pglink/internal/serve"
)

// runUI runs the demo's link under pglink serve, with the workload
// writing, and keeps the dashboard up until ctx ends (Ctrl-C): the link
// seeds and replicates in the browser, and the user fails it over there
// with the wizard. The workload stops quietly at the failover's fence.
func (d *demo) runUI(ctx context.Context) error {
	workCtx, stopWork := context.WithCancel(ctx)
	work := NewWorkload(d.srcURL, d.opts.Clients)
	work.ExpectFence()
	workload := background(func() error { return work.Run(workCtx) })
	defer func() { stopWork(); workload.wait() }()

	cfg := filepath.Join(d.dir, "links.yaml")
	body := fmt.Sprintf("links:\n  - name: %s\n    source: %s\n    target: %s\n", linkName, d.srcURL, d.tgtURL)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		return fmt.Errorf("write the demo's links file: %w", err)
	}
	srv, err := serve.Start(ctx, serve.Options{ConfigPath: cfg, Listen: d.opts.UI, Logger: d.opts.Logger})
	if err != nil {
		return err
	}
	defer srv.Close(context.WithoutCancel(ctx))
	d.say("link %s runs under pglink serve with a workload of %d sessions writing to the source", linkName, d.opts.Clients)
	d.say("dashboard: http://%s/  (the link: http://%s/links/%s, its failover wizard: http://%s/links/%s/failover)",
		srv.Addr(), srv.Addr(), linkName, srv.Addr(), linkName)
	d.say("press Ctrl-C to end the demo and remove both instances")
	<-ctx.Done()
	fmt.Fprintln(d.out)
	d.say("the workload committed %d transactions on the source", work.Committed())
	return nil
}
