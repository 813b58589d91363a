package discover

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Options say where to look and how.
type Options struct {
	Hosts []string // names, addresses and CIDR blocks
	Ports string   // e.g. "5432-5439,6432"
	// User logs in to the servers found; empty for PGUSER or the operating
	// system user, as libpq. The password comes from PGPASSWORD or the
	// passfile, never from a flag.
	User         string
	Timeout      time.Duration // per probe; 1s when zero
	LoginTimeout time.Duration // per login; 5s when zero
	Parallel     int           // probes at once; 64 when zero
}

// Server is what one host and port turned out to be.
type Server struct {
	Host   string `json:"host"`
	Port   int    `json:"port"`
	Status Status `json:"status"`
	Detail string `json:"detail"` // what answered, or why nothing did
	TLS    bool   `json:"tls"`    // the server offered TLS
	// Version is empty when unknown: a server tells it only after a login.
	Version string `json:"version"`
	// Login is "ok", or why the login failed; empty when none was tried
	// (the port is not PostgreSQL).
	Login     string     `json:"login"`
	Databases []Database `json:"databases"`
}

// Database is one database of a server found, as the login user sees it.
type Database struct {
	Name      string `json:"name"`
	SizeBytes *int64 `json:"size_bytes"` // null when the user may not connect to it
	Tables    int    `json:"tables"`
	// Ready is true when nothing blocks a link from this database;
	// Blockers says what does (pglink assess gives the fixes).
	Ready    bool     `json:"ready"`
	Blockers []string `json:"blockers"`
	Error    string   `json:"error,omitempty"` // why the database could not be checked
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.LoginTimeout <= 0 {
		o.LoginTimeout = 5 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 64
	}
}

// Plan returns the host and port pairs a discovery probes, or why the
// options are not valid.
func Plan(opts Options) ([]Server, error) {
	hosts, err := ExpandHosts(opts.Hosts)
	if err != nil {
		return nil, err
	}
	ports, err := ParsePorts(opts.Ports)
	if err != nil {
		return nil, err
	}
	if n := len(hosts) * len(ports); n > MaxProbes {
		return nil, fmt.Errorf("%d hosts times %d ports make %d probes; pglink discover makes at most %d at once: give fewer hosts or ports",
			len(hosts), len(ports), n, MaxProbes)
	}
	out := make([]Server, 0, len(hosts)*len(ports))
	for _, h := range hosts {
		for _, p := range ports {
			out = append(out, Server{Host: h, Port: p, Databases: []Database{}})
		}
	}
	return out, nil
}

// Run probes every host and port of opts in parallel and returns one
// Server per pair, in the order of the hosts and ports given. Whatever a
// target does (refuses, stays silent, speaks another protocol, refuses the
// login), it is reported in its Server and discovery goes on; the error is
// only for invalid options.
func Run(ctx context.Context, opts Options) ([]Server, error) {
	opts.defaults()
	servers, err := Plan(opts)
	if err != nil {
		return nil, err
	}
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Add(1)
		sem <- struct{}{}
		go func(s *Server) {
			defer func() { <-sem; wg.Done() }()
			examine(ctx, s, opts)
		}(&servers[i])
	}
	wg.Wait()
	return servers, nil
}

// examine probes one target and, when it is PostgreSQL, logs in.
func examine(ctx context.Context, s *Server, opts Options) {
	if ctx.Err() != nil {
		s.Status, s.Detail = StatusNoAnswer, "not probed: "+ctx.Err().Error()
		return
	}
	s.Status, s.Detail, s.TLS = probe(ctx, s.Host, s.Port, opts.Timeout)
	if s.Status != StatusPostgres {
		return
	}
	login(ctx, s, opts)
}
