package web

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/failover"
	"github.com/pglink/pglink/internal/state"
)

// failoverInterrupted is the state shown for a failover recorded as
// running by a pglink serve that is gone: it ended before the failover
// did (killed, or its machine lost).
const failoverInterrupted = "interrupted"

// recordTimeout bounds one write of a failover's record.
const recordTimeout = 10 * time.Second

// recorder keeps a failover's record on the link's target (see
// state.SaveFailoverRecord) as it runs: at its start, after its steps
// move, and at its end, on a session of its own. The failover never
// waits for it: the writes go on in the background, the latest view
// replacing one not yet written, and a write that fails is logged only.
type recorder struct {
	link, target string
	view         func() FailoverView
	log          *slog.Logger
	poke         chan struct{}
	done         chan struct{}
}

func startRecorder(link, target string, view func() FailoverView, log *slog.Logger) *recorder {
	r := &recorder{link: link, target: target, view: view, log: log, poke: make(chan struct{}, 1), done: make(chan struct{})}
	go r.run()
	r.changed()
	return r
}

// changed asks for the view to be written.
func (r *recorder) changed() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// finish writes the final view and waits for it.
func (r *recorder) finish() {
	close(r.poke)
	<-r.done
}

func (r *recorder) run() {
	defer close(r.done)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for range r.poke {
		var err error
		if conn, err = r.write(conn); err != nil {
			r.log.Warn("could not record the failover on the target; the dashboard shows it until pglink serve stops", "link", r.link, "error", err)
		}
	}
	if _, err := r.write(conn); err != nil {
		r.log.Warn("could not record the failover's result on the target", "link", r.link, "error", err)
	}
}

// write saves the view now, on conn or a new session (returned; nil when
// it failed).
func (r *recorder) write(conn *pgx.Conn) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	b, err := json.Marshal(r.view())
	if err != nil {
		return conn, fmt.Errorf("encode the failover's record: %w", err)
	}
	if conn == nil || conn.IsClosed() {
		if conn, err = state.ConnectTarget(ctx, r.target); err != nil {
			return nil, err
		}
	}
	if err := state.SaveFailoverRecord(ctx, conn, r.link, b); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	return conn, nil
}

// loadFailover reads link name's last failover recorded on its target,
// or nil. One recorded as running whose failover lease nobody holds was
// cut off with the process that ran it.
func loadFailover(ctx context.Context, name, target string) (*FailoverView, error) {
	conn, err := state.ConnectTarget(ctx, target)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return readFailover(ctx, conn, name)
}

// readFailover is loadFailover on a target session.
func readFailover(ctx context.Context, conn *pgx.Conn, name string) (*FailoverView, error) {
	b, err := state.LoadFailoverRecord(ctx, conn, name)
	if err != nil || b == nil {
		return nil, err
	}
	var v FailoverView
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("target: the failover record of link %s: %w", name, err)
	}
	if v.State != failoverRunning {
		return &v, nil
	}
	runs, err := state.FailoverRuns(ctx, conn, name)
	if err != nil {
		return nil, err
	}
	if !runs {
		v.State = failoverInterrupted
		for i := range v.Steps {
			if v.Steps[i].State == failover.StepRunning {
				v.Steps[i].State = failoverInterrupted
			}
		}
		if v.Result == nil {
			v.Result = &failover.Result{Kind: v.Kind, Link: v.Link,
				Error: "the pglink serve that ran this failover stopped before the failover ended",
				Next:  []string{"run pglink status " + name + " to see where the link stands, then run the failover again: it goes on from where it stopped, or undoes what was done"}}
		}
	}
	return &v, nil
}
