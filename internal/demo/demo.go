package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/instance"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/status"
)

// Options tune the demo; the zero value is the full demo.
type Options struct {
	Scale   int           // shop size, DefaultScale when 0
	Clients int           // workload sessions, 4 when 0
	Live    time.Duration // how long to show live lag, 15 s when 0
	// SeedTimeout bounds the wait for the link to replicate, 90 s when 0:
	// past it something is wrong, and the demo says so instead of hanging.
	SeedTimeout time.Duration
	// BrokenTimeout is how long the demo lets the link stay broken (it
	// retries) before giving up, 20 s when 0.
	BrokenTimeout time.Duration
	// MaxLag is the lag under which the planned failover fences the
	// source; the failover's default (1 s) when 0.
	MaxLag time.Duration
	Dir    string       // parent of the two data directories; a fresh temporary one when empty (and then removed)
	Out    io.Writer    // the report; os.Stdout when nil
	Logger *slog.Logger // the link's log; warnings to stderr when nil
	// UI, when set (host:port), runs the link under pglink serve with its
	// dashboard there, until ctx ends, instead of the scripted failover
	// and check.
	UI string
}

const linkName = "demo"

// demo holds what one run made, so cleanup can remove all of it.
type demo struct {
	opts        Options
	out         io.Writer
	dir         string
	ownDir      bool
	source, tgt *instance.Instance
	srcURL      string
	tgtURL      string
}

// Run shows pglink end to end on two local instances: it fills a source
// with the shop, writes to it while a link seeds and streams into the
// target, stops the writes, waits until the target has caught up, and
// compares both sides row by row. Both instances are removed at the end,
// also when it fails or ctx is cancelled (Ctrl-C). It returns an error when
// any step fails or the sides differ.
func Run(ctx context.Context, opts Options) (err error) {
	d := &demo{opts: withDefaults(opts), out: opts.Out}
	if d.out == nil {
		d.out = os.Stdout
	}
	defer func() {
		if cerr := d.cleanup(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("demo interrupted: %w", err)
		}
	}()
	if err := d.startInstances(ctx); err != nil {
		return err
	}
	if err := d.fillSource(ctx); err != nil {
		return err
	}
	if d.opts.UI != "" {
		return d.runUI(ctx)
	}
	if err := d.runLink(ctx); err != nil {
		return err
	}
	return d.verify(ctx)
}

func withDefaults(o Options) Options {
	if o.Scale == 0 {
		o.Scale = DefaultScale
	}
	if o.Clients == 0 {
		o.Clients = 4
	}
	if o.SeedTimeout == 0 {
		o.SeedTimeout = 90 * time.Second
	}
	if o.BrokenTimeout == 0 {
		o.BrokenTimeout = 20 * time.Second
	}
	if o.Live == 0 {
		o.Live = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return o
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// startInstances creates and starts the source and the target instance.
func (d *demo) startInstances(ctx context.Context) error {
	d.dir = d.opts.Dir
	if d.dir == "" {
		dir, err := instance.MkdirTemp("pglink-demo-")
		if err != nil {
			return err
		}
		d.dir, d.ownDir = dir, true
	}
	for _, side := range []struct {
		name string
		inst **instance.Instance
	}{{"source", &d.source}, {"target", &d.tgt}} {
		inst, err := instance.Create(ctx, instance.Options{Dir: filepath.Join(d.dir, side.name)})
		if err != nil {
			return fmt.Errorf("create the %s instance: %w", side.name, err)
		}
		*side.inst = inst
		if err := inst.Start(ctx); err != nil {
			return fmt.Errorf("start the %s instance: %w", side.name, err)
		}
		d.say("%s instance: PostgreSQL on 127.0.0.1:%d, data in %s", side.name, inst.Port, inst.Dir)
	}
	d.srcURL, d.tgtURL = d.source.URL("shop"), d.tgt.URL("shop")
	return nil
}

// cleanup stops and removes both instances whatever happened before, with
// a context of its own: the caller's may be cancelled already.
func (d *demo) cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for _, inst := range []*instance.Instance{d.source, d.tgt} {
		if inst != nil {
			errs = append(errs, inst.Remove(ctx))
		}
	}
	if d.ownDir {
		if err := os.RemoveAll(d.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d.dir, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove the demo instances: %w", err)
	}
	d.say("removed both instances")
	return nil
}

// fillSource creates the shop database on the source.
func (d *demo) fillSource(ctx context.Context) error {
	start := time.Now()
	conn, err := pgx.Connect(ctx, d.source.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to the source: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE shop"); err != nil {
		return fmt.Errorf("create database shop on the source: %w", err)
	}
	shop, err := pgx.Connect(ctx, d.srcURL)
	if err != nil {
		return fmt.Errorf("connect to the source: %w", err)
	}
	defer shop.Close(context.WithoutCancel(ctx))
	if err := CreateShop(ctx, shop, d.opts.Scale); err != nil {
		return err
	}
	d.say("source: shop database filled (scale %d, about %d rows) in %s",
		d.opts.Scale, d.opts.Scale*27/2, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// status reads the link's status, with the source's position.
func (d *demo) status(ctx context.Context) (*report.Status, error) {
	return status.Read(ctx, linkName, d.tgtURL, d.srcURL)
}
