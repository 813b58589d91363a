package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/wait"
)

// ErrFailedOver and ErrLinkGone end a running link's process: a failover
// has taken over, or the link was removed.
var (
	ErrFailedOver = errors.New("the link has failed over")
	ErrLinkGone   = errors.New("the link was removed from the target")
)

// A validation compares the source at one position X (the consistent point
// of a snapshot it exports) with the target at exactly X. The running link
// cooperates through its row in pglink.links:
//
//	validate: pause_state = 'requested'
//	link:     commits what it applied, stops before the next transaction, pause_state = 'holding'
//	validate: exports the source snapshot at X, pause_state = 'at', pause_at = X
//	link:     applies the transactions that committed before X, stops before the first at or after X,
//	          commits, pause_state = 'paused'
//	validate: exports a target snapshot, clears pause_state; the link goes on
//
// Heartbeats guarantee that a transaction at or after X arrives, so the link
// knows when it has applied everything before X. The user's writes on the
// source never stop. A pause that nobody releases ends by itself after
// pauseLimit, so a crashed validation cannot stall the link.
//
// The link's row tells the link at once when one of these moves (see
// LinkChannel); the poll behind it is only a safety net while nothing is
// under way, and a fast one while something is.
const (
	pausePoll     = 2 * time.Second
	pausePollBusy = 20 * time.Millisecond // while a pause or a failover runs
	pauseLimit    = 2 * time.Minute
)

// LinkChannel is the LISTEN channel on which the target says that a
// link's pause state, phase or failover changed, or that the link was
// removed (payload: the link's name; see the trigger notify_link).
const LinkChannel = "pglink_link"

// Pauser is the link's side of the protocol, fed by a poller of the
// link's row and asked by the apply before each source transaction.
type Pauser struct {
	tgt  *endpoint.Endpoint
	link string

	mu    sync.Mutex
	state string // "", "requested", "holding", "at", "paused"
	at    change.LSN
	since time.Time
}

func NewPauser(tgt *endpoint.Endpoint, link string) *Pauser {
	return &Pauser{tgt: tgt, link: link}
}

// Poll reads the link's pause state until ctx ends: again as soon as the
// target says it changed (LinkChannel), else every pausePoll.
func (p *Pauser) Poll(ctx context.Context) error {
	conn, err := p.tgt.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+LinkChannel); err != nil {
		return fmt.Errorf("target: listen for the link's changes: %w", err)
	}
	for {
		var state, at, kind *string
		var phase Phase
		err := ControlQuery(ctx, endpoint.Target, "the pause poll", func(ctx context.Context) error {
			return conn.QueryRow(ctx, `SELECT pause_state, pause_at::text, phase, failover_kind FROM pglink.links WHERE name = $1`,
				p.link).Scan(&state, &at, &phase, &kind)
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrLinkGone
		}
		if err != nil {
			return fmt.Errorf("target: read pause state: %w", err)
		}
		if phase == PhaseFailedOver || (phase == PhaseFailingOver && Deref(kind) == "forced") {
			return ErrFailedOver // a forced failover stops the link at once
		}
		p.set(Deref(state), ParseLSN(at))
		// A failover holds the link at its end position for as long as it
		// takes; only a validation's pause ends by itself.
		if phase != PhaseFailingOver && p.expired() {
			if err := EndPause(ctx, conn, p.link); err != nil {
				return fmt.Errorf("end an abandoned pause: %w", err)
			}
		}
		// While a pause or a failover is under way, every poll's delay is
		// time the link waits or the source stays blocked: poll faster.
		every := pausePoll
		if Deref(state) != "" || phase == PhaseFailingOver {
			every = pausePollBusy
		}
		if err := p.waitChange(ctx, conn, every); err != nil {
			return err
		}
	}
}

// waitChange waits up to d for the target to say that the link's row
// changed; another link's news (the channel is the database's) is passed
// over.
func (p *Pauser) waitChange(ctx context.Context, conn *pgx.Conn, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		n, err := conn.WaitForNotification(wctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case wctx.Err() != nil:
			return nil // the poll's time
		case err != nil:
			return fmt.Errorf("target: wait for the link's changes: %w", err)
		case n.Payload == p.link:
			return nil
		}
	}
}

// Deref reads a value that may be NULL, as its zero value then.
func Deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (p *Pauser) set(state string, at change.LSN) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if state != "" && p.state == "" {
		p.since = time.Now()
	}
	p.state, p.at = state, at
}

func (p *Pauser) expired() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state != "" && time.Since(p.since) > pauseLimit
}

func (p *Pauser) get() (string, change.LSN) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state, p.at
}

// Holding tells the apply whether it must stop before a source
// transaction that committed at commitLSN.
func (p *Pauser) Holding(commitLSN change.LSN) bool {
	state, at := p.get()
	switch state {
	case "requested", "holding":
		return true
	case "at", "paused":
		return commitLSN >= at
	}
	return false
}

// Wait is called by the apply when it has committed everything before the
// transaction at commitLSN and Holding said stop: it acknowledges the pause
// and waits until the state moves on.
func (p *Pauser) Wait(ctx context.Context, commitLSN change.LSN) error {
	state, _ := p.get()
	next, from := "holding", []string{"requested", "holding"}
	if state == "at" || state == "paused" {
		next, from = "paused", []string{"at", "paused"}
	}
	conn, err := p.tgt.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Only the state this poller saw moves on: a release and a new request
	// since its last poll must not be acknowledged as the old pause.
	if _, err := conn.Exec(ctx, `UPDATE pglink.links SET pause_state = $2 WHERE name = $1 AND pause_state = ANY($3)`,
		p.link, next, from); err != nil {
		return fmt.Errorf("target: acknowledge pause: %w", err)
	}
	// A release and a new request can come within one poll of the link's
	// row (a failover undone, or taken over, and the next one asking at
	// once): this poller then sees the new request's state without the
	// release between. Returning lets the apply ask Holding again, which
	// acknowledges the new request.
	sawHolding := false
	for p.Holding(commitLSN) {
		switch s, _ := p.get(); {
		case next == "paused" && (s == "requested" || s == "holding"):
			return nil // a new request started
		case next == "holding" && (s == "at" || s == "paused"):
			return nil // the requester set the position: Holding says whether this transaction is before it
		case next == "holding" && s == "holding":
			sawHolding = true
		case next == "holding" && s == "requested" && sawHolding:
			return nil // released while holding, and requested again
		}
		if err := wait.Sleep(ctx, pausePollBusy); err != nil {
			return err
		}
	}
	return nil
}

// RequestPause runs the validation's side: it returns when the link has
// paused at the position export() returns, with release to call (always)
// once the target snapshot is taken.
//
// nudge, when not nil, writes an empty transaction on the source; it is
// called while waiting, so that a quiet source does not leave the link
// waiting for its next heartbeat (up to HeartbeatInterval) twice.
func RequestPause(ctx context.Context, conn *pgx.Conn, link string, export func() (change.LSN, error), nudge func(context.Context) error, timeout time.Duration) (release func(), err error) {
	if err := AskPause(ctx, conn, link); err != nil {
		return nil, err
	}
	release = func() { EndPause(context.WithoutCancel(ctx), conn, link) }
	if err := WaitPauseState(ctx, conn, link, "holding", timeout, nudge); err != nil {
		release()
		return nil, err
	}
	at, err := export()
	if err != nil {
		release()
		return nil, err
	}
	if _, err := conn.Exec(ctx, `UPDATE pglink.links SET pause_state = 'at', pause_at = $2::text::pg_lsn WHERE name = $1`,
		link, at.String()); err != nil {
		release()
		return nil, fmt.Errorf("target: set pause position: %w", err)
	}
	if err := WaitPauseState(ctx, conn, link, "paused", timeout, nudge); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// AskPause asks the link to commit what it applied and hold before its
// next source transaction (pause_state 'requested'); it fails when another
// pause is under way.
func AskPause(ctx context.Context, conn *pgx.Conn, link string) error {
	tag, err := conn.Exec(ctx, `UPDATE pglink.links SET pause_state = 'requested', pause_at = NULL, pause_requested_at = now()
		WHERE name = $1 AND pause_state IS NULL`, link)
	if err != nil {
		return fmt.Errorf("target: ask link %s to pause: %w", link, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("target: link %s is paused already, by a validation; wait for it to end and try again", link)
	}
	return nil
}

// EndPause lets the link go on.
func EndPause(ctx context.Context, conn *pgx.Conn, link string) error {
	if _, err := conn.Exec(ctx, `UPDATE pglink.links SET pause_state = NULL, pause_at = NULL WHERE name = $1`, link); err != nil {
		return fmt.Errorf("target: release link %s: %w", link, err)
	}
	return nil
}

func WaitPauseState(ctx context.Context, conn *pgx.Conn, link, want string, timeout time.Duration, nudge func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for i := 0; ; i++ {
		var state *string
		if err := conn.QueryRow(ctx, `SELECT pause_state FROM pglink.links WHERE name = $1`, link).Scan(&state); err != nil {
			return fmt.Errorf("target: read pause state of link %s: %w", link, err)
		}
		if Deref(state) == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("link %s did not pause within %s (state %q): is it running and caught up? check pglink status", link, timeout, Deref(state))
		}
		if nudge != nil && i%5 == 1 {
			if err := nudge(ctx); err != nil {
				return err
			}
		}
		if err := wait.Sleep(ctx, pausePollBusy); err != nil {
			return err
		}
	}
}

// NudgeSQL writes an empty transaction into the source's WAL, so that a
// link waiting for the source's next transaction to reach a pause gets it
// at once instead of at its next heartbeat.
const NudgeSQL = `SELECT pg_logical_emit_message(true, 'pglink', 'nudge')`

// Nudger returns a function that writes an empty transaction (NudgeSQL) on
// src, a session on the source.
func Nudger(src *pgx.Conn) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, err := src.Exec(ctx, NudgeSQL); err != nil {
			return fmt.Errorf("source: write an empty transaction: %w", err)
		}
		return nil
	}
}
