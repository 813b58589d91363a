package failover

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pglink/pglink/internal/quote"
	"github.com/pglink/pglink/internal/state"
)

// Result is what a failover did, step by step, for the table and the JSON
// output. The JSON names are an interface users script against: keep them.
type Result struct {
	Kind  string       `json:"kind"`
	Link  string       `json:"link"`
	OK    bool         `json:"ok"`
	Steps []StepResult `json:"steps"`
	// Planned: from the moment the source refused writes to the moment the
	// target took them.
	Downtime        time.Duration `json:"-"`
	DowntimeSeconds *float64      `json:"downtime_seconds"`
	// EndLSN is, planned, the source position after the fence: the target
	// holds every transaction the source committed before it.
	EndLSN string `json:"end_lsn,omitempty"`
	// The last source transaction the target applied.
	AppliedLSN        string     `json:"applied_lsn,omitempty"`
	AppliedCommitTime *time.Time `json:"applied_commit_time,omitempty"`
	// Forced: the last source position the link knew of, and the WAL
	// between it and the applied position, which may hold lost
	// transactions. WAL the source wrote after that is not known.
	LastKnownSourceLSN string   `json:"last_known_source_lsn,omitempty"`
	MayBeLostBytes     *int64   `json:"may_be_lost_bytes,omitempty"`
	SourceFenced       *bool    `json:"source_fenced,omitempty"`
	Notes              []string `json:"notes"`
	Next               []string `json:"next"`
	Error              string   `json:"error,omitempty"`
	Undo               string   `json:"undo,omitempty"` // after a failure: what was undone
}

// StepResult is one step's outcome.
type StepResult struct {
	ID      string        `json:"id"`
	Title   string        `json:"title"`
	State   string        `json:"state"`
	Detail  string        `json:"detail,omitempty"`
	Took    time.Duration `json:"-"`
	Seconds float64       `json:"seconds"`
}

func (s *StepResult) set(state, detail string, took time.Duration) {
	s.State, s.Detail, s.Took, s.Seconds = state, detail, took, took.Seconds()
}

func newResult(p *Plan) *Result {
	r := &Result{Kind: p.Kind, Link: p.Link, Notes: []string{}, Next: []string{}}
	for _, st := range p.Steps {
		r.Steps = append(r.Steps, StepResult{ID: st.ID, Title: st.Title, State: StepSkipped})
	}
	return r
}

func (r *Result) fail(err error, undo string) {
	r.OK, r.Error, r.Undo = false, err.Error(), undo
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// finish fills in the figures of a failover that went through.
func (r *Result) finish(x *execution) {
	r.OK = true
	if !x.blockedAt.IsZero() && !x.writableAt.IsZero() {
		r.Downtime = x.writableAt.Sub(x.blockedAt)
		s := r.Downtime.Seconds()
		r.DowntimeSeconds = &s
	}
	if x.endLSN != 0 {
		r.EndLSN = x.endLSN.String()
	}
	r.Next = append(r.Next, "Point the application at the target database: it takes writes now.")
	if x.opts.Reverse {
		r.Next = append(r.Next, fmt.Sprintf("Run the reverse link, which keeps the old source in step with the target: pglink start --name %s --source <the target> --target <the old source> (or add it to pglink serve's file). A planned failover of it fails back.", state.ReverseName(x.plan.Link)))
	} else if x.plan.Kind == Planned && !x.opts.ReleaseSource {
		r.Next = append(r.Next, "The source stays read-only, so no write lands there unnoticed; pglink release-source --source ... makes it writable again when you no longer need it as a fallback.")
	}
	if x.plan.Kind == Forced {
		r.Next = append(r.Next, fmt.Sprintf("If the old source comes back, run pglink fence-source --name %s --source ... --target ... at once: it makes the old source refuse writes and drops the link's slot there.", x.plan.Link))
	}
	if !x.opts.Cleanup {
		r.Next = append(r.Next, fmt.Sprintf("pglink drop --name %s removes what is left of the link (publication, origin, state); the data stays.", x.plan.Link))
	}
}

// WriteTable writes the results for people: the steps with their state and
// duration, then the figures and what to do next.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tSTEP\tRESULT\tTIME\tDETAIL")
	for i, s := range r.Steps {
		took := ""
		if s.State != StepSkipped {
			took = formatDuration(s.Took)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i+1, s.Title, s.State, took, quote.FirstLine(s.Detail, 0))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	if r.OK {
		fmt.Fprintf(&b, "\n%s failover of link %s: done.\n", capitalize(r.Kind), r.Link)
	} else {
		fmt.Fprintf(&b, "\n%s failover of link %s: FAILED.\n%s\n", capitalize(r.Kind), r.Link, r.Error)
		if r.Undo != "" {
			fmt.Fprintf(&b, "%s\n", r.Undo)
		}
	}
	if r.DowntimeSeconds != nil {
		fmt.Fprintf(&b, "Write downtime: %s (from the source refusing writes to the target taking them)\n", formatDuration(r.Downtime))
	}
	if r.EndLSN != "" {
		fmt.Fprintf(&b, "Source end position: %s (the target holds every transaction committed before it)\n", r.EndLSN)
	}
	if r.AppliedLSN != "" {
		fmt.Fprintf(&b, "Last applied source transaction: %s", r.AppliedLSN)
		if r.AppliedCommitTime != nil {
			fmt.Fprintf(&b, ", committed on the source at %s", r.AppliedCommitTime.UTC().Format(time.RFC3339Nano))
		}
		b.WriteString("\n")
	}
	if r.LastKnownSourceLSN != "" {
		fmt.Fprintf(&b, "Last source position known to the link: %s\n", r.LastKnownSourceLSN)
	}
	if r.MayBeLostBytes != nil {
		fmt.Fprintf(&b, "WAL not applied, which may hold lost transactions: %d bytes (and whatever the source wrote after it was last seen)\n", *r.MayBeLostBytes)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "Note: %s\n", n)
	}
	for _, n := range r.Next {
		fmt.Fprintf(&b, "Next: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return d.Round(time.Second).String()
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
