package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/failover"
)

// A failover's states in the API.
const (
	failoverRunning = "running"
	failoverDone    = "done"
	failoverFailed  = "failed"
)

// FailoverRequest is the body of the failover's plan and run requests.
type FailoverRequest struct {
	Kind                  string  `json:"kind"` // planned or forced
	Confirm               string  `json:"confirm"`
	Validate              bool    `json:"validate"`
	ReleaseSource         bool    `json:"release_source"`
	Reverse               bool    `json:"reverse"`
	Cleanup               bool    `json:"cleanup"`
	MaxLagSeconds         float64 `json:"max_lag_seconds"`
	CatchUpTimeoutSeconds float64 `json:"catch_up_timeout_seconds"`
	TimeoutSeconds        float64 `json:"timeout_seconds"`
}

// PlanStep is one step of a plan as the wizard shows it.
type PlanStep struct {
	ID      string  `json:"id"`
	Title   string  `json:"title"`
	Side    string  `json:"side"`
	What    string  `json:"what"`
	Commits bool    `json:"commits"` // from this step on, the target takes writes: no undo
	State   string  `json:"state,omitempty"`
	Detail  string  `json:"detail,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
}

// FailoverView is a failover run by this server: its steps as they run,
// then its result.
type FailoverView struct {
	Link      string           `json:"link"`
	Kind      string           `json:"kind"`
	State     string           `json:"state"` // running, done, failed
	StartedAt time.Time        `json:"started_at"`
	EndedAt   *time.Time       `json:"ended_at,omitempty"`
	Steps     []PlanStep       `json:"steps"`
	Result    *failover.Result `json:"result,omitempty"`
}

// failovers are those run by this server, the last one per link, kept in
// memory so that a page opened again shows them.
type failovers struct {
	ctx   context.Context
	links Links
	log   *slog.Logger
	wg    sync.WaitGroup
	mu    sync.Mutex
	runs  map[string]*FailoverView
}

func newFailovers(ctx context.Context, links Links, log *slog.Logger) *failovers {
	return &failovers{ctx: ctx, links: links, log: log, runs: map[string]*FailoverView{}}
}

// get returns a copy of link name's last failover, or nil.
func (f *failovers) get(name string) *FailoverView {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.runs[name]
	if v == nil {
		return nil
	}
	return copyView(v)
}

// copyView copies v, whose lock (failovers.mu) is held.
func copyView(v *FailoverView) *FailoverView {
	c := *v
	c.Steps = append([]PlanStep(nil), v.Steps...)
	return &c
}

func (f *failovers) wait() { f.wg.Wait() }

// all returns a copy of the last failover of every link run here.
func (f *failovers) all() []FailoverView {
	f.mu.Lock()
	names := make([]string, 0, len(f.runs))
	for name := range f.runs {
		names = append(names, name)
	}
	f.mu.Unlock()
	out := make([]FailoverView, 0, len(names))
	for _, name := range names {
		if v := f.get(name); v != nil {
			out = append(out, *v)
		}
	}
	return out
}

// start runs plan in a goroutine of the server's, unless a failover of
// the link runs here already. Its record goes to the link's target as it
// runs (see recorder), so that a pglink serve started again shows it.
func (f *failovers) start(plan *failover.Plan, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v := f.runs[plan.Link]; v != nil && v.State == failoverRunning {
		return fmt.Errorf("a %s failover of link %s runs already (started %s)", v.Kind, plan.Link, v.StartedAt.Format(time.RFC3339))
	}
	v := &FailoverView{Link: plan.Link, Kind: plan.Kind, State: failoverRunning, StartedAt: time.Now(), Steps: planSteps(plan)}
	f.runs[plan.Link] = v
	rec := startRecorder(plan.Link, target, func() FailoverView {
		f.mu.Lock()
		defer f.mu.Unlock()
		return *copyView(v)
	}, f.log)
	plan.Opts.Logger = f.log.With("failover", plan.Kind)
	plan.Opts.Progress = func(e failover.Event) {
		f.mu.Lock()
		defer f.mu.Unlock()
		st := &v.Steps[e.Index-1]
		st.State, st.Detail = e.State, e.Detail
		if e.Took > 0 {
			st.Seconds = e.Took.Seconds()
		}
		rec.changed()
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		res, err := failover.Run(f.ctx, plan)
		f.mu.Lock()
		now := time.Now()
		v.EndedAt, v.Result, v.State = &now, res, failoverDone
		if err != nil || res == nil || !res.OK {
			v.State = failoverFailed
		}
		f.mu.Unlock()
		rec.finish()
		if v.State == failoverFailed {
			f.log.Error("failover failed", "link", plan.Link, "error", err)
			// A forced failover stops the link before it may fail and
			// undo: the link replicates again.
			f.links.Wake(plan.Link)
			return
		}
		f.log.Info("failover done", "link", plan.Link, "kind", plan.Kind)
	}()
	return nil
}

func planSteps(p *failover.Plan) []PlanStep {
	out := make([]PlanStep, len(p.Steps))
	for i, st := range p.Steps {
		out[i] = PlanStep{ID: st.ID, Title: st.Title, Side: st.Side, What: st.What, Commits: st.Commits, State: failover.StepSkipped}
	}
	return out
}

// plan builds link name's failover for req.
func (w *Web) plan(name string, req FailoverRequest) (*failover.Plan, int, error) {
	source, target, ok := w.links.Endpoints(name)
	if !ok {
		return nil, http.StatusNotFound, fmt.Errorf("no link %s in this pglink serve's file", name)
	}
	p, err := failover.Build(failover.Options{Name: name, Source: source, Target: target, Kind: req.Kind,
		Validate: req.Validate, ReleaseSource: req.ReleaseSource, Reverse: req.Reverse, Cleanup: req.Cleanup,
		MaxLag: seconds(req.MaxLagSeconds), CatchUpTimeout: seconds(req.CatchUpTimeoutSeconds), Timeout: seconds(req.TimeoutSeconds)})
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	return p, http.StatusOK, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func (w *Web) apiFailoverPlan(rw http.ResponseWriter, r *http.Request) {
	var req FailoverRequest
	if err := readJSON(r, &req); err != nil {
		apiError(rw, http.StatusBadRequest, "the request's body: "+err.Error())
		return
	}
	p, code, err := w.plan(r.PathValue("name"), req)
	if err != nil {
		apiError(rw, code, err.Error())
		return
	}
	writeJSON(rw, http.StatusOK, map[string]any{"link": p.Link, "kind": p.Kind, "steps": planSteps(p), "warning": planWarning(p)})
}

func planWarning(p *failover.Plan) string {
	if p.Kind == failover.Forced {
		return "A forced failover makes the target writable at once, without the source: transactions the target has not applied are lost."
	}
	return "The source refuses writes from the fence on; the application has about a second of write downtime, then writes to the target."
}

func (w *Web) apiFailoverStart(rw http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req FailoverRequest
	if err := readJSON(r, &req); err != nil {
		apiError(rw, http.StatusBadRequest, "the request's body: "+err.Error())
		return
	}
	if req.Confirm != name {
		apiError(rw, http.StatusBadRequest, fmt.Sprintf("not confirmed: type the link's name (%s) in confirm to run its failover; nothing was changed", name))
		return
	}
	p, code, err := w.plan(name, req)
	if err != nil {
		apiError(rw, code, err.Error())
		return
	}
	_, target, _ := w.links.Endpoints(name)
	if err := w.failovers.start(p, target); err != nil {
		apiError(rw, http.StatusConflict, err.Error())
		return
	}
	writeJSON(rw, http.StatusAccepted, w.failovers.get(name))
}

// apiFailoverGet answers the link's last failover: the one run here, or
// else the last one recorded on its target by a pglink serve.
func (w *Web) apiFailoverGet(rw http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, _, ok := w.links.Endpoints(name); !ok {
		apiError(rw, http.StatusNotFound, fmt.Sprintf("no link %s in this pglink serve's file", name))
		return
	}
	v, err := w.lastFailover(r.Context(), name)
	switch {
	case err != nil:
		apiError(rw, http.StatusBadGateway, "could not read the link's last failover: "+err.Error())
	case v == nil:
		apiError(rw, http.StatusNotFound, "no failover of link "+name+" was run from pglink serve")
	default:
		writeJSON(rw, http.StatusOK, v)
	}
}

// lastFailover returns link name's failover run here, or else the one
// recorded on its target (read at most every readEvery), or nil.
func (w *Web) lastFailover(ctx context.Context, name string) (*FailoverView, error) {
	if v := w.failovers.get(name); v != nil {
		return v, nil
	}
	_, target, _ := w.links.Endpoints(name)
	got := w.reads.get(ctx, name+"\x00failover", func(ctx context.Context) stored {
		v, err := loadFailover(ctx, name, target)
		if err != nil {
			return stored{StatusError: err.Error()}
		}
		return stored{Failover: v}
	})
	if got.StatusError != "" {
		return nil, errors.New(got.StatusError)
	}
	return got.Failover, nil
}

// apiFailoverScript answers the plan as a bash script; the options come
// as query parameters (kind, validate, release_source, cleanup; reverse is
// refused: it has no script).
func (w *Web) apiFailoverScript(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	flag := func(k string) bool { b, _ := strconv.ParseBool(q.Get(k)); return b }
	req := FailoverRequest{Kind: q.Get("kind"), Validate: flag("validate"), ReleaseSource: flag("release_source"), Cleanup: flag("cleanup")}
	if req.Kind == "" {
		req.Kind = failover.Planned
	}
	if flag("reverse") {
		apiError(rw, http.StatusBadRequest, "a failover with a reverse link cannot be written as a script: run it from the wizard")
		return
	}
	p, code, err := w.plan(r.PathValue("name"), req)
	if err != nil {
		apiError(rw, code, err.Error())
		return
	}
	rw.Header().Set("Content-Type", "text/x-shellscript; charset=utf-8")
	rw.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="failover-%s-%s.sh"`, p.Link, p.Kind))
	fmt.Fprint(rw, failover.Script(p))
}
