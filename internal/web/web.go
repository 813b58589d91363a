// Package web is pglink serve's dashboard: a JSON API under /api/ and the
// pages that use it (the links, a link's detail, assess, and the failover
// wizard), served from files embedded in the binary. A failover started
// here runs in the server, not in the request, so it survives the browser
// closing; the pages poll the API.
package web

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/report"
)

// Links is what the dashboard needs of the process that runs the links.
type Links interface {
	Snapshot() []report.Live
	// Endpoints returns a link's connection strings, for connecting only:
	// they may hold a password and never reach an answer.
	Endpoints(name string) (source, target string, ok bool)
	// Wake starts a link again whose run ended, after a failover that
	// stopped it was undone.
	Wake(name string)
}

// Options configure the dashboard.
type Options struct {
	Links  Links
	Logger *slog.Logger
}

// Web is the dashboard of one pglink serve.
type Web struct {
	links     Links
	log       *slog.Logger
	samples   *sampler
	reads     *readCache
	failovers *failovers
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// New starts the dashboard's sampler of lag and throughput. Close stops
// it, and the failovers running in the server.
func New(opts Options) *Web {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Web{links: opts.Links, log: opts.Logger, cancel: cancel, samples: newSampler(), reads: newReadCache()}
	w.failovers = newFailovers(ctx, opts.Links, opts.Logger)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.samples.run(ctx, opts.Links.Snapshot)
	}()
	return w
}

// Failovers returns the last failover of each link run by this server,
// for the metrics.
func (w *Web) Failovers() []FailoverView { return w.failovers.all() }

// Close stops the sampler and interrupts the failovers running here (a
// planned one undoes its steps, as on Ctrl-C), and waits for them.
func (w *Web) Close() {
	w.cancel()
	w.failovers.wait()
	w.wg.Wait()
}

// Register adds the pages and the API to mux.
func (w *Web) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/links", w.apiLinks)
	mux.HandleFunc("GET /api/links/{name}", w.apiLink)
	mux.HandleFunc("POST /api/assess", w.apiAssess)
	mux.HandleFunc("POST /api/links/{name}/failover/plan", w.apiFailoverPlan)
	mux.HandleFunc("POST /api/links/{name}/failover", w.apiFailoverStart)
	mux.HandleFunc("GET /api/links/{name}/failover", w.apiFailoverGet)
	mux.HandleFunc("GET /api/links/{name}/failover/script", w.apiFailoverScript)
	w.registerPages(mux)
}

// SameOrigin refuses a state-changing request that a page of another
// site sent: a browser says so in Origin (and Sec-Fetch-Site), and a page
// elsewhere must not fail over a link on a dashboard at 127.0.0.1.
// Requests without either header (curl, scripts) pass.
func SameOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
			next.ServeHTTP(rw, r)
			return
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
			apiError(rw, http.StatusForbidden, "refused: this request came from a page of another site (Sec-Fetch-Site: "+site+")")
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
			apiError(rw, http.StatusForbidden, "refused: this request came from a page of another origin ("+o+"); use the dashboard at "+r.Host)
			return
		}
		next.ServeHTTP(rw, r)
	})
}

func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(code)
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// apiError answers {"error": msg}.
func apiError(rw http.ResponseWriter, code int, msg string) {
	writeJSON(rw, code, map[string]string{"error": msg})
}

// readJSON decodes a request's body into v, at most 64 KiB.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// requestTimeout bounds the database work of one API request.
const requestTimeout = 20 * time.Second
