// Package apply is the target side of a link: it reads the source's
// changes from a channel and applies them to the target database in source
// commit order, exactly once, many source transactions per target
// transaction, with prepared statements sent pipelined.
//
// Exactly once rests on PostgreSQL's replication origins, as in native
// logical replication: the session is bound to the link's origin, and each
// target transaction records the source position it applied
// (pg_replication_origin_xact_setup) in its own commit record, so data and
// position are durable together or not at all.
package apply

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/change"
)

// Options configure an Applier.
type Options struct {
	Conn   *pgx.Conn // a dedicated target session; Applier owns it while Run runs
	Origin string    // replication origin name (already created, see EnsureOrigin)
	// Second, when set, is another dedicated target session, bound to the
	// origin SecondOrigin (already created): consecutive batches then go
	// to the two sessions in turn, the target still committing them in
	// source order (see lane). When Run cannot bind it (a target
	// without a free replication origin slot), it goes on with Conn
	// alone and logs why.
	Second       *pgx.Conn
	SecondOrigin string
	// SyncLSN returns the position a table was copied at during seeding
	// ("schema.table" unquoted key). Row changes of that table whose
	// CommitLSN < the sync LSN are skipped (already in the copy), as native
	// table sync does. nil: apply everything.
	SyncLSN func(qualifiedName string) (change.LSN, bool)
	// Joining, when set, is asked first about each row change and TRUNCATE
	// of a table: handled says the table is joining the link (its copy is
	// taken while the link streams), and then skip says whether its copy
	// holds the change. It may wait until it knows (the copy's position is
	// not known yet, or the change comes after it and the copy is not
	// done); the apply has not touched that table in its open transaction
	// then, so the copy does not wait for the apply.
	Joining func(ctx context.Context, qualifiedName string, commitLSN change.LSN) (skip, handled bool, err error)
	// ProgressSQL, when set, runs inside every target transaction just
	// before COMMIT with ($1 text: end LSN of the last source commit in the
	// batch, $2 timestamptz: its commit time, $3 bigint: source transactions
	// in the batch, $4 bigint: changes in the batch).
	ProgressSQL   string
	MaxBatchTxns  int           // source txns per target txn when there is a backlog; default 1000
	MaxBatchDelay time.Duration // never hold a target txn open longer than this at a source commit; default 200ms
	// DurableEvery bounds how long the apply goes without a durable commit
	// while it works through a backlog (default 1s). A batch committed
	// while more source transactions wait does not wait for its WAL flush
	// (synchronous_commit = off, as native apply workers commit), unless
	// the last durable commit is older than this; a batch committed when
	// the input is drained, or before the Gate holds, always waits. A
	// durable commit makes every earlier one durable too (WAL is flushed
	// in order), and only durable commits are reported to OnApplied, so
	// the source never forgets a change the target could still lose.
	DurableEvery time.Duration
	// MaxInflight is how many batches may be sent to the target and not
	// read back (see inflight); default 2. With 1 the target waits for
	// pglink between two batches, a round trip each time.
	MaxInflight int
	// RowByRow turns set-based apply off: every row change is applied with
	// its own statement (see fold.go).
	RowByRow bool
	// SourceAhead, when set, returns a position the source's WAL is known
	// to have reached whose transaction the stream will bring (the link's
	// last heartbeat), or 0. A source commit that ends at or before it is
	// not the last one: when the input is empty there, the stream is
	// momentarily behind the source, not caught up, and the open batch
	// waits for more (within MaxBatchDelay) instead of committing alone
	// and durably, which would stall the apply in a backlog.
	SourceAhead func() change.LSN
	// Gate, when set, may hold the apply between two source transactions.
	Gate Gate
	// SchemaChange, when set, is asked about each logical message of a
	// source transaction that is not already applied. The statements it
	// returns run on the target at that point of the transaction (see
	// schema.go); none leaves the message without effect, and an error
	// stops the apply before anything of the message is applied.
	SchemaChange func(ctx context.Context, c *change.Change) ([]Statement, error)
	// OnApplied is called after each durable target COMMIT with the end LSN
	// of the last source transaction it holds (the stream's SetApplied);
	// see DurableEvery.
	OnApplied func(endLSN change.LSN)
	Logger    *slog.Logger
}

// Stats count what an Applier did; Changes counts applied row changes.
// Skipped counts changes not applied because the target already has them:
// row changes from before their table's sync LSN, and every change of the
// source transactions the origin had already applied (SkippedTxns).
type Stats struct {
	Txns, Changes, Batches, Skipped, Conflicts int64
	SkippedTxns                                int64
	// Changes by kind: rows inserted, updated and deleted, and TRUNCATEs.
	Inserts, Updates, Deletes, Truncates int64
	// Fallbacks counts flushes of set-based statements that failed and
	// were applied row by row instead (fold.go).
	Fallbacks      int64
	LastEndLSN     change.LSN
	LastCommitTime time.Time
	LastAppliedAt  time.Time // when the target committed the last batch
}

// ErrIncompleteTransaction is returned (wrapped) when the input closes
// inside a source transaction: the open target transaction is rolled back,
// and the origin's position makes the source send those transactions again.
var ErrIncompleteTransaction = errors.New("input closed inside a source transaction")

// Applier applies changes to the target.
type Applier struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	stats Stats
}

// Gate holds the apply at a source position: before each source
// transaction the applier asks Holding; while it is true, the applier
// commits what it has applied and calls Wait, which blocks until the gate
// moves on. A validation uses it to see the target at one exact position.
type Gate interface {
	Holding(commitLSN change.LSN) bool
	Wait(ctx context.Context, commitLSN change.LSN) error
}

// New returns an Applier; nothing touches the database before Run.
func New(opts Options) *Applier {
	if opts.MaxBatchTxns <= 0 {
		opts.MaxBatchTxns = 1000
	}
	if opts.MaxBatchDelay <= 0 {
		opts.MaxBatchDelay = 200 * time.Millisecond
	}
	if opts.DurableEvery <= 0 {
		opts.DurableEvery = time.Second
	}
	if opts.MaxInflight <= 0 {
		opts.MaxInflight = 2
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Applier{opts: opts, log: log}
}

// Stats returns a copy of the counters; safe for concurrent use.
func (a *Applier) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// Run applies changes until in is closed (it returns nil after committing
// what it has), ctx ends (it rolls the open target transaction back and
// returns ctx.Err()) or an error (rolled back too, returned with the source
// position and table). The session's origin is set up for the run and
// reset when Run returns. After an error or a cancellation the connection
// may be closed; the caller should open a new one.
func (a *Applier) Run(ctx context.Context, in <-chan *change.Change) (err error) {
	conn := a.opts.Conn
	origins := []string{a.opts.Origin}
	if a.opts.Second != nil {
		origins = append(origins, a.opts.SecondOrigin)
	}
	progress, err := OriginProgress(ctx, conn, origins...)
	if err != nil {
		return err
	}
	if err := setupOrigin(ctx, conn, a.opts.Origin); err != nil {
		return err
	}
	plan := newPlanner()
	tr := &transport{
		a: a, plan: plan,
		lanes: []*lane{{conn: conn, origin: a.opts.Origin, snd: &sender{conn: conn.PgConn(), log: a.log}}},
		fold:  &fold{},
	}
	if c := a.opts.Second; c != nil {
		if err := setupOrigin(ctx, c, a.opts.SecondOrigin); err != nil {
			a.log.Warn("apply: the second target session is not used", "reason", err.Error())
		} else {
			tr.lanes = append(tr.lanes, &lane{conn: c, origin: a.opts.SecondOrigin, snd: &sender{conn: c.PgConn(), log: a.log}})
		}
	}
	tr.useLane(0)
	l := &loop{a: a, origin: progress, plan: plan, tr: tr}
	tr.report = l.addStats
	err = l.run(ctx, in)
	// A target gone silent must not hold the run's end for long: the
	// server rolls back and resets the origin of a session that ends.
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if cerr := tr.finish(cleanupCtx); cerr != nil && err == nil {
		err = cerr
	}
	if ctx.Err() != nil && (err == nil || errors.Is(err, ctx.Err()) || tr.closed()) {
		return ctx.Err()
	}
	return err
}

func (a *Applier) addStats(d Stats) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stats.Txns += d.Txns
	a.stats.Changes += d.Changes
	a.stats.Inserts += d.Inserts
	a.stats.Updates += d.Updates
	a.stats.Deletes += d.Deletes
	a.stats.Truncates += d.Truncates
	a.stats.Conflicts += d.Conflicts
	a.stats.Skipped += d.Skipped
	a.stats.SkippedTxns += d.SkippedTxns
	if d.Txns > 0 {
		a.stats.Batches++
	}
}

func (a *Applier) setLast(c *change.Change) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stats.LastEndLSN, a.stats.LastCommitTime = c.EndLSN, c.CommitTime
	a.stats.LastAppliedAt = time.Now()
}
