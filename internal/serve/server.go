package serve

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/web"
)

// DefaultListen is where pglink serve listens unless told otherwise.
const DefaultListen = "127.0.0.1:9187"

// Options are pglink serve's.
type Options struct {
	ConfigPath string
	Listen     string // host:port; anything but loopback needs Token
	// Token, when set, must come as "Authorization: Bearer <token>" with
	// every HTTP request.
	Token string
	// TLSCert and TLSKey, when both are set, make the HTTP side speak
	// HTTPS with that certificate and key (PEM files).
	TLSCert, TLSKey string
	// WALWarnBytes is the WAL guard's threshold for links whose entry
	// sets none (0: the default rule, see report.WALWarnThreshold).
	WALWarnBytes int64
	// Pprof mounts Go's profiler under /debug/pprof/ (behind the token,
	// as everything else). For measuring pglink itself: the command
	// sets it from the environment (PGLINK_PPROF=1), not from a flag.
	Pprof  bool
	Logger *slog.Logger
}

// Server is a running pglink serve: its links and its HTTP side.
type Server struct {
	opts Options
	sup  *Supervisor
	ln   net.Listener
	http *http.Server
	web  *web.Web
}

// Start checks the options and the links file, listens, and starts every
// link. On any mistake nothing is started.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := CheckListen(opts.Listen, opts.Token); err != nil {
		return nil, err
	}
	specs, err := LoadFile(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := loadTLS(opts.TLSCert, opts.TLSKey)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (another pglink serve, or another service, may use it: give --listen another address)", opts.Listen, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s := &Server{opts: opts, sup: NewSupervisor(opts.Logger), ln: ln}
	s.web = web.New(web.Options{Links: s.sup, Logger: opts.Logger})
	s.http = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	go s.http.Serve(ln)
	opts.Logger.Info("serving", "address", ln.Addr().String(), "links", len(specs))
	s.sup.Apply(ctx, s.withDefaults(specs))
	return s, nil
}

// Addr is the address the HTTP side listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Reload reads the links file again and applies it; a file with a mistake
// changes nothing (the error says what and where).
func (s *Server) Reload(ctx context.Context) error {
	specs, err := LoadFile(s.opts.ConfigPath)
	if err != nil {
		return fmt.Errorf("reload: %w; the links run on as before", err)
	}
	s.opts.Logger.Info("reloading the links file", "links", len(specs))
	s.sup.Apply(ctx, s.withDefaults(specs))
	return nil
}

// Close stops every link (each cleanly, as Ctrl-C stops pglink start),
// then the HTTP side.
func (s *Server) Close(ctx context.Context) {
	s.web.Close() // a failover running here first: it steers the links
	s.sup.Stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	s.http.Shutdown(sctx)
}

// Links returns every link's live view.
func (s *Server) Links() []report.Live { return s.sup.Snapshot() }

func (s *Server) withDefaults(specs []Spec) []Spec {
	for i := range specs {
		if specs[i].Config.WALWarnBytes == 0 {
			specs[i].Config.WALWarnBytes = s.opts.WALWarnBytes
		}
	}
	return specs
}

// CheckListen refuses an address other than loopback without a token:
// the HTTP side shows the links, and later steers them.
func CheckListen(listen, token string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q: give host:port, like %s: %w", listen, DefaultListen, err)
	}
	if token != "" || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--listen %s is reachable from other machines: give --token (or PGLINK_TOKEN) with a secret that every request must send as \"Authorization: Bearer <token>\", or listen on 127.0.0.1", listen)
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(newRegistry(s.sup.Snapshot, s.web.Failovers), promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", s.ready)
	s.web.Register(mux)
	if s.opts.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return requireToken(s.opts.Token, web.SameOrigin(mux))
}

// ready answers 200 when every link is seeding or replicating (or left to
// another process that holds its lease), 503 naming those that are not.
func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	var not []string
	for _, l := range s.sup.Snapshot() {
		switch l.State {
		case "seeding", "replicating", report.LiveStandby:
		default:
			not = append(not, fmt.Sprintf("%s: %s", l.Name, l.State))
		}
	}
	if len(not) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", strings.Join(not, "; "))
		return
	}
	fmt.Fprintln(w, "ready")
}

// requireToken lets a request through only with the bearer token, when
// one is set.
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A browser cannot send the header with a page's links: it opens
		// the dashboard once at /?token=..., which sets a cookie for the
		// rest (SameSite=Strict: no other site's page sends it).
		if q := r.URL.Query().Get("token"); q != "" && subtle.ConstantTimeCompare([]byte(q), []byte(token)) == 1 {
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
			http.Redirect(w, r, r.URL.Path, http.StatusSeeOther)
			return
		}
		if c, err := r.Cookie(tokenCookie); err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(token)) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pglink"`)
			http.Error(w, "pglink serve needs the token: send Authorization: Bearer <token>", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

const tokenCookie = "pglink_token"

// ErrNoConfig says pglink serve was given no links file.
var ErrNoConfig = errors.New("no links file: give --config links.yaml")

// loadTLS reads the dashboard's certificate and key; with neither given
// the HTTP side stays plain.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, errors.New("--tls-cert and --tls-key go together: give both, or neither")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
