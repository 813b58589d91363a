package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/change"
)

// DefaultStatusInterval is how often standby status goes to the source when
// Options.StatusInterval is zero. The server drops a client that stays
// silent for wal_sender_timeout (60 s by default).
const DefaultStatusInterval = time.Second

// Options configure a Streamer.
type Options struct {
	// Conn is the source; the streamer opens its own replication connection
	// from it (see ReplicationConfig).
	Conn        *pgconn.Config
	Slot        string
	Publication string
	// StartLSN is where to start: the target's applied position. With 0 the
	// server starts at the slot's confirmed_flush_lsn. It also counts as
	// applied: the streamer never reports less to the source.
	StartLSN change.LSN
	// SpoolDir holds spooled streamed transactions; created if missing.
	// Files of a previous run in it are removed, so each link needs its
	// own directory.
	SpoolDir       string
	StatusInterval time.Duration // standby status period; DefaultStatusInterval when 0
	// StatusGap is the least time between two standby status updates sent
	// because SetApplied moved the applied position (between them, the
	// timer and the server's requests still send one); DefaultStatusGap
	// when 0. Negative: none are sent for that reason.
	StatusGap time.Duration
	// Silence is how long the source may send nothing at all before the
	// connection is given up as lost; when zero, it is derived from the
	// source's wal_sender_timeout (see silenceLimit).
	Silence time.Duration
	// Binary asks pgoutput for values in binary form (PostgreSQL 14+;
	// ignored on 13): the caller has checked that the target takes every
	// published column's binary form as it is (see pluginArgs). Values of
	// types without a send function still come as text.
	Binary bool
	Logger *slog.Logger // may be nil
}

// Stats are counters and positions of a Streamer.
type Stats struct {
	ReceivedLSN  change.LSN // start of the last WAL data message received
	ServerWALEnd change.LSN // source WAL end reported by the last keepalive
	FlushedLSN   change.LSN // flush position last reported to the source
	LastMessage  time.Time  // when the source last sent anything
	Transactions int64      // transactions sent on out (Commit sent)
	Changes      int64      // row changes and messages sent on out
	StreamedTxns int64      // of Transactions, those spooled while in progress
	SpooledBytes int64      // bytes written to spool files, ever
	SpoolBytes   int64      // bytes in spool files now
}

// Streamer reads a source's logical replication slot and sends the decoded
// Changes in source commit order. Run it once at a time.
type Streamer struct {
	opts    Options
	log     *slog.Logger
	applied atomic.Uint64
	waker   atomic.Pointer[waker] // of the running session; nil between runs

	mu      sync.Mutex
	stats   Stats
	pending []pendingTxn // see OldestPending
}

// New returns a Streamer for opts.
func New(opts Options) *Streamer {
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = DefaultStatusInterval
	}
	if opts.StatusGap == 0 {
		opts.StatusGap = DefaultStatusGap
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Streamer{opts: opts, log: log}
	s.applied.Store(uint64(opts.StartLSN))
	return s
}

// SetApplied tells the streamer that every transaction with EndLSN <= lsn
// is durably committed on the target. The flush position sent to the
// source never passes it (not even to the server's WAL end when everything
// sent is applied, see sendStatus). Positions only
// move forward; a smaller lsn is ignored. A position that moves is sent to
// the source soon (at most Options.StatusGap after the previous status),
// so the slot follows the target's commits closely, not only at the
// status timer.
func (s *Streamer) SetApplied(lsn change.LSN) {
	for {
		cur := s.applied.Load()
		if uint64(lsn) <= cur {
			return
		}
		if s.applied.CompareAndSwap(cur, uint64(lsn)) {
			break
		}
	}
	if w := s.waker.Load(); w != nil && s.opts.StatusGap > 0 {
		w.poke()
	}
}

// Stats returns a snapshot of the counters; safe for concurrent use.
func (s *Streamer) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *Streamer) updateStats(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

func (o Options) validate() error {
	switch {
	case o.Conn == nil:
		return errors.New("stream: no source connection config")
	case o.Publication == "":
		return errors.New("stream: no publication")
	case o.SpoolDir == "":
		return errors.New("stream: no spool directory")
	}
	return checkSlotName(o.Slot)
}

// Run connects, starts replication and sends Changes on out, in source
// commit order, until ctx ends (returning ctx.Err()) or an error. It never
// closes out. Every row change carries the CommitLSN of its transaction.
// Spool files are removed when Run returns.
func (s *Streamer) Run(ctx context.Context, out chan<- *change.Change) (err error) {
	if err := s.opts.validate(); err != nil {
		return err
	}
	sp, err := openSpool(s.opts.SpoolDir)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := sp.removeAll(); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()

	cfg, gather := gathering(ReplicationConfig(s.opts.Conn))
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("source: connect for replication: %w", err)
	}
	defer closeConn(conn)

	versionNum, err := serverVersionNum(ctx, conn)
	if err != nil {
		return err
	}
	silence := s.opts.Silence
	if silence <= 0 {
		if silence, err = silenceLimit(ctx, conn); err != nil {
			return err
		}
	}
	start := s.opts.StartLSN
	err = pglogrepl.StartReplication(ctx, conn, s.opts.Slot, start, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: pluginArgs(versionNum, s.opts.Publication, s.opts.Binary),
	})
	if err != nil {
		return fmt.Errorf("start replication: %w", slotError(s.opts.Slot, err))
	}
	gather.start()
	format := "text"
	if s.opts.Binary && versionNum >= 140000 {
		format = "binary"
	}
	s.log.Info("replication started", "slot", s.opts.Slot, "start_lsn", start.String(),
		"publication", s.opts.Publication, "server_version_num", versionNum, "silence_limit", silence,
		"stream_format", format)

	ss := &session{
		Streamer:   s,
		conn:       conn,
		out:        out,
		rels:       make(relationCache),
		spool:      sp,
		wake:       newWaker(conn.Conn()),
		timer:      time.NewTimer(time.Hour),
		nextStatus: time.Now(),
		silence:    silence,
		heard:      time.Now(),
	}
	defer ss.timer.Stop()
	// The receive waits with a read deadline on the connection instead of
	// a context per message (a context.WithDeadline and pgconn's watcher
	// goroutine for each message were an eighth of pglink's CPU while
	// catching up): ctx's end interrupts it the same way SetApplied does.
	s.waker.Store(ss.wake)
	defer s.waker.Store(nil)
	stop := context.AfterFunc(ctx, ss.wake.interrupt)
	defer stop()
	return ss.loop(ctx)
}

// closeConn ends the replication connection; the server's walsender then
// exits and releases the slot (and drops it, when it is temporary).
func closeConn(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx) // the connection is gone either way; nothing is lost
}
