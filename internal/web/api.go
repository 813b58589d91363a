package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/status"
)

// LinkView is one link in the API: its live view, its throughput and the
// failover running here, if any.
type LinkView struct {
	report.Live
	rates
	// Failover is the state of the last failover started here: running,
	// done or failed.
	Failover string `json:"failover,omitempty"`
}

// TableView is one table's seeding: the durable record on the target
// merged with this process's copy jobs.
type TableView struct {
	Name        string   `json:"name"`
	State       string   `json:"state"`
	Rows        int64    `json:"rows"`
	Bytes       int64    `json:"bytes"`
	EstRows     int64    `json:"est_rows"`
	EstBytes    int64    `json:"est_bytes"`
	BytesPerSec float64  `json:"bytes_per_sec"`
	ETASeconds  *float64 `json:"eta_seconds"`
	Percent     float64  `json:"percent"`
}

// Detail is one link's page in the API.
type Detail struct {
	Link        LinkView             `json:"link"`
	Status      *report.Status       `json:"status,omitempty"`
	StatusError string               `json:"status_error,omitempty"`
	Tables      []TableView          `json:"tables"`
	History     []state.HistoryEvent `json:"history"`
	Lag         []LagSample          `json:"lag"`
	Failover    *FailoverView        `json:"failover,omitempty"`
}

func (w *Web) views() []LinkView {
	lives := w.links.Snapshot()
	out := make([]LinkView, 0, len(lives))
	for _, l := range lives {
		out = append(out, w.view(l))
	}
	return out
}

func (w *Web) view(l report.Live) LinkView {
	v := LinkView{Live: l, rates: w.samples.rates(l.Name)}
	if f := w.failovers.get(l.Name); f != nil {
		v.Failover = f.State
		if f.State == failoverRunning {
			v.State = string(state.PhaseFailingOver)
		}
	}
	return v
}

func (w *Web) liveOf(name string) (report.Live, bool) {
	for _, l := range w.links.Snapshot() {
		if l.Name == name {
			return l, true
		}
	}
	return report.Live{}, false
}

func (w *Web) apiLinks(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, http.StatusOK, map[string]any{"links": w.views()})
}

func (w *Web) apiLink(rw http.ResponseWriter, r *http.Request) {
	d, code, err := w.detail(r.Context(), r.PathValue("name"))
	if err != nil {
		apiError(rw, code, err.Error())
		return
	}
	writeJSON(rw, http.StatusOK, d)
}

// detail reads link name's status and history from its target (and
// source), at most every readEvery however many pages poll, and adds what
// this process knows.
func (w *Web) detail(ctx context.Context, name string) (*Detail, int, error) {
	lives := w.links.Snapshot()
	names := make(map[string]bool, len(lives))
	var live report.Live
	for _, l := range lives {
		names[l.Name] = true
		if l.Name == name {
			live = l
		}
	}
	w.reads.forget(names)
	source, target, _ := w.links.Endpoints(name)
	if !names[name] {
		return nil, http.StatusNotFound, fmt.Errorf("no link %s in this pglink serve's file", name)
	}
	got := w.reads.get(ctx, name, func(ctx context.Context) stored {
		return readStored(ctx, name, source, target)
	})
	d := &Detail{Link: w.view(live), Lag: w.samples.lag(name), Status: got.Status, StatusError: got.StatusError,
		History: got.History, Tables: mergeTables(got.Status, live.SeedTables)}
	if d.History == nil {
		d.History = []state.HistoryEvent{}
	}
	if d.Failover = w.failovers.get(name); d.Failover == nil {
		d.Failover = got.Failover
	}
	return d, http.StatusOK, nil
}

// readStored reads what the link page shows of link name from its
// servers. The read is shared by every request of the next readEvery: it
// does not end with the request that started it.
func readStored(ctx context.Context, name, source, target string) stored {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	var out stored
	st, err := status.Read(ctx, name, target, source)
	if err != nil {
		out.StatusError = err.Error()
	} else {
		out.Status = st
	}
	conn, err := state.ConnectTarget(ctx, target)
	if err == nil {
		defer conn.Close(context.WithoutCancel(ctx))
		out.History, err = state.LoadHistory(ctx, conn, name, 100)
	}
	if err == nil {
		out.Failover, err = readFailover(ctx, conn, name)
	}
	if err != nil {
		out.StatusError = strings.TrimSpace(out.StatusError + "\n" + err.Error())
	}
	return out
}

// mergeTables takes each table's state and estimates from the target's
// record, and its rows, bytes and rate from the copy jobs while they copy
// it (the record is written when a table's copy starts and ends).
func mergeTables(st *report.Status, copying []report.LiveTable) []TableView {
	live := map[string]report.LiveTable{}
	for _, t := range copying {
		live[t.Name] = t
	}
	out := []TableView{}
	if st == nil {
		return out
	}
	for _, t := range st.Tables {
		v := TableView{Name: t.Name, State: string(t.State), Rows: t.RowsCopied, Bytes: t.BytesCopied, EstRows: t.EstRows, EstBytes: t.EstBytes}
		if lt, ok := live[t.Name]; ok && t.State == state.TableCopying {
			v.Rows, v.Bytes, v.BytesPerSec = lt.Rows, lt.Bytes, lt.BytesPerSec
		}
		switch {
		case t.State == state.TableCopied:
			v.Percent = 100
		case v.EstBytes > 0:
			v.Percent = min(99, 100*float64(v.Bytes)/float64(v.EstBytes))
		}
		if t.State == state.TableCopying && v.BytesPerSec > 0 && v.EstBytes > v.Bytes {
			eta := float64(v.EstBytes-v.Bytes) / v.BytesPerSec
			v.ETASeconds = &eta
		}
		out = append(out, v)
	}
	return out
}

// AssessRequest is the body of POST /api/assess.
type AssessRequest struct {
	Source        string   `json:"source"`
	Target        string   `json:"target"`
	Tables        []string `json:"tables"`
	ExcludeTables []string `json:"exclude_tables"`
	Schema        string   `json:"schema"`
}

func (w *Web) apiAssess(rw http.ResponseWriter, r *http.Request) {
	var req AssessRequest
	if err := readJSON(r, &req); err != nil {
		apiError(rw, http.StatusBadRequest, "the request's body: "+err.Error()+`; send {"source": "...", "target": "..."}`)
		return
	}
	if req.Source == "" {
		apiError(rw, http.StatusBadRequest, "no source: give a connection string like postgres://user@host:5432/db")
		return
	}
	if req.Schema == "" {
		req.Schema = "copy"
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*requestTimeout)
	defer cancel()
	rep, err := assess.Run(ctx, assess.Options{Source: req.Source, Target: req.Target, Tables: req.Tables,
		ExcludeTables: req.ExcludeTables, Schema: req.Schema})
	if err != nil {
		apiError(rw, http.StatusUnprocessableEntity, "could not assess the source: "+err.Error())
		return
	}
	writeJSON(rw, http.StatusOK, rep)
}
