package serve

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/link"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/wait"
)

// LeaseRetry is how often a standby looks whether the process that holds
// a link's lease still does: when that process dies, this one takes the
// link over within about this long. Tests shorten it.
var LeaseRetry = 3 * time.Second

// backoffMax bounds the wait before a failed link is started again.
const backoffMax = time.Minute

// Supervisor runs links, each in its own goroutine with its own context:
// one that fails is started again after a backoff, without touching the
// others.
type Supervisor struct {
	log   *slog.Logger
	mu    sync.Mutex
	links map[string]*running
}

type running struct {
	spec   Spec
	live   *link.Live
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{} // starts a link whose run ended (see Wake)
}

// ended shows a link whose run ended for good: failed over (the runner
// says so, or refused to start a failed-over link), else ended.
func (r *running) ended(err error) {
	if errors.Is(err, state.ErrFailedOver) || r.live.Snapshot().State == string(state.PhaseFailedOver) {
		r.live.SetState(string(state.PhaseFailedOver))
		return
	}
	r.live.SetState(report.LiveEnded)
}

// NewSupervisor returns a supervisor that runs no link yet.
func NewSupervisor(log *slog.Logger) *Supervisor {
	return &Supervisor{log: log, links: map[string]*running{}}
}

// Apply makes the running links those of specs: links no longer named
// stop, changed ones restart, new ones start, the others go on untouched.
// It returns once the stopped links have stopped.
func (s *Supervisor) Apply(ctx context.Context, specs []Spec) {
	want := map[string]Spec{}
	for _, sp := range specs {
		want[sp.Config.Name] = sp
	}
	s.mu.Lock()
	var stopping []*running
	for name, r := range s.links {
		if sp, ok := want[name]; !ok || !sp.same(r.spec) {
			stopping = append(stopping, r)
			delete(s.links, name)
		}
	}
	s.mu.Unlock()
	stopAll(stopping)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range specs {
		if _, ok := s.links[sp.Config.Name]; ok {
			continue
		}
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r := &running{spec: sp, live: link.NewLive(sp.Config.Name), cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1)}
		if src, tgt, err := state.ParseEndpoints(sp.Config.Source, sp.Config.Target); err == nil {
			r.live.SetEndpoints(src.Describe(), tgt.Describe())
		}
		s.links[sp.Config.Name] = r
		s.log.Info("link added", "link", sp.Config.Name)
		go s.run(rctx, r)
	}
}

// Stop stops every link and waits for them.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	var all []*running
	for _, r := range s.links {
		all = append(all, r)
	}
	s.links = map[string]*running{}
	s.mu.Unlock()
	stopAll(all)
}

func stopAll(rs []*running) {
	for _, r := range rs {
		r.cancel()
	}
	for _, r := range rs {
		<-r.done
	}
}

// Wake starts link name again if its run has ended: a failover that
// stopped it and then undid its steps leaves it to replicate again.
func (s *Supervisor) Wake(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.links[name]; ok {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Endpoints returns link name's connection strings (with their secrets:
// for connecting only, never for showing).
func (s *Supervisor) Endpoints(name string) (source, target string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.links[name]
	if !ok {
		return "", "", false
	}
	return r.spec.Config.Source, r.spec.Config.Target, true
}

// Snapshot returns every link's live view, by name.
func (s *Supervisor) Snapshot() []report.Live {
	s.mu.Lock()
	out := make([]report.Live, 0, len(s.links))
	for _, r := range s.links {
		out = append(out, r.live.Snapshot())
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b report.Live) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// run runs one link until ctx ends: after an error it starts the link
// again with a growing backoff; while another process holds the link's
// lease it waits as a standby, trying every LeaseRetry.
func (s *Supervisor) run(ctx context.Context, r *running) {
	defer close(r.done)
	log := s.log.With("link", r.spec.Config.Name)
	delay := time.Duration(0)
	for {
		cfg := r.spec.Config
		cfg.Logger, cfg.Live = s.log, r.live
		r.live.SetState(report.LiveStarting)
		began := time.Now()
		err := link.Run(ctx, cfg)
		if ctx.Err() != nil {
			log.Info("link stopped")
			return
		}
		var pause time.Duration
		switch {
		case err == nil || errors.Is(err, state.ErrFailedOver):
			r.ended(err)
			log.Info("the link has ended (failed over or dropped); remove it from the file")
			select {
			case <-ctx.Done():
				log.Info("link stopped")
				return
			case <-r.wake:
				log.Info("starting the link again")
				delay = 0
				continue
			}
		case errors.Is(err, state.ErrLeaseHeld):
			if r.live.Snapshot().State != report.LiveStandby {
				log.Info("another pglink process runs this link; this one takes it over when that one stops")
			}
			r.live.SetState(report.LiveStandby)
			standby(ctx, r.spec.Config.Target, r.spec.Config.Name)
			delay = 0
		default:
			r.live.NoteError(err, true)
			r.live.SetState(report.LiveRetrying)
			if time.Since(began) > backoffMax {
				delay = 0 // it ran a while: a new failure
			}
			delay = min(max(2*delay, time.Second), backoffMax)
			pause = delay
			log.Error("link failed; starting it again", "error", err, "in", pause)
		}
		if wait.Sleep(ctx, pause) != nil {
			log.Info("link stopped")
			return
		}
	}
}

// standby waits while another process holds link name's lease: on one
// target session kept open, one look at the lease every LeaseRetry (a
// hundred standby links cost a few queries a second, and no connections).
// It returns when the lease is free, when the look fails (the link's
// start then says what is wrong), or when ctx ends.
func standby(ctx context.Context, target, name string) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for wait.Sleep(ctx, LeaseRetry) == nil {
		if conn == nil {
			c, err := state.ConnectTarget(ctx, target)
			if err != nil {
				return
			}
			conn = c
		}
		qctx, cancel := context.WithTimeout(ctx, state.ControlTimeout)
		held, err := state.LeaseHeld(qctx, conn, name)
		cancel()
		if err != nil || !held {
			return
		}
	}
}
