package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/endpoint"
)

// session is the state of one Run: one replication connection, owned by
// the one goroutine that runs the loop. Receiving, decoding, sending on out
// and sending standby status all happen on it, so no lock guards the
// connection; while a send on out blocks, emit keeps the status going.
type session struct {
	*Streamer
	conn  *pgconn.PgConn
	out   chan<- *change.Change
	rels  relationCache
	spool *spool

	inStream bool // between StreamStart and StreamStop

	// The open regular transaction, from Begin until its Commit is sent.
	txnOpen      bool
	txnXID       uint32
	txnCommitLSN change.LSN

	lastSentEnd  change.LSN // EndLSN of the last Commit sent on out
	serverWALEnd change.LSN // from the last keepalive
	flushed      change.LSN // last flush position reported

	// Counters not yet added to the Streamer's Stats: publishing them
	// takes its lock and reads the clock, so it is done per source
	// transaction, keepalive and stream block (and every publishEvery
	// messages, and before a wait for the apply), not per message. Each
	// publish follows a message just received, so it stamps LastMessage.
	recvLSN     change.LSN // start of the last WAL data message received
	newChanges  int64
	unpublished int // messages received since the last publish

	wake       *waker
	timer      *time.Timer // emit's, reused
	armed      time.Time   // read deadline set on the connection; zero when unknown
	lastStatus time.Time
	nextStatus time.Time // the timer's next standby status

	// The source is given up when it sends nothing for silence; from half
	// of it, each standby status asks for a reply. heard is when it last
	// sent something, or when the session last began to listen again.
	silence time.Duration
	heard   time.Time
}

// publishEvery bounds how many messages the counters in Stats may lag
// behind, within a large transaction.
const publishEvery = 256

// statusCheckEvery is how often, in messages, the loop reads the clock to
// see whether a standby status is due while messages keep coming. When the
// connection has nothing buffered, the read deadline (set to when the next
// status is due) ends the wait instead: a read after it fails at once.
const statusCheckEvery = 64

// loop receives until ctx ends or an error. Each receive waits at most
// until the next standby status is due: the timer's, or the one the apply
// asked for by moving the applied position (see waker).
func (ss *session) loop(ctx context.Context) error {
	checkStatus := true
	for n := 0; ; n++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if checkStatus || n%statusCheckEvery == 0 {
			if err := ss.statusIfDue(ctx); err != nil {
				return err
			}
			checkStatus = false
		}
		if at := ss.wakeAt(); !at.Equal(ss.armed) {
			if err := ss.conn.Conn().SetReadDeadline(at); err != nil {
				return fmt.Errorf("source: replication stream: %w", err)
			}
			ss.armed = at
			continue // a poke just before the deadline was set must be seen: look again
		}
		msg, err := ss.conn.ReceiveMessage(context.Background())
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if pgconn.Timeout(err) {
				if err := ss.checkSilence(); err != nil {
					return err
				}
				ss.armed = time.Time{} // a poke may have changed the deadline
				checkStatus = true
				continue
			}
			return fmt.Errorf("source: replication stream: %w", err)
		}
		ss.heard = time.Now()
		if err := ss.handleBackend(ctx, msg); err != nil {
			return err
		}
	}
}

func (ss *session) handleBackend(ctx context.Context, msg pgproto3.BackendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		return ss.handleCopyData(ctx, m.Data)
	case *pgproto3.ErrorResponse:
		return fmt.Errorf("source: replication stream: %w", pgconn.ErrorResponseToPgError(m))
	case *pgproto3.CopyDone:
		return errors.New("source: the server ended the replication stream")
	case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		return nil
	}
	return fmt.Errorf("source: replication stream: unexpected message %T", msg)
}

// handleCopyData handles one message of the streaming replication protocol:
// a primary keepalive ('k') or WAL data ('w') holding one pgoutput message.
func (ss *session) handleCopyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return errors.New("source: empty replication message")
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("source: keepalive: %w", err)
		}
		ss.serverWALEnd = max(ss.serverWALEnd, ka.ServerWALEnd)
		ss.publish()
		if ka.ReplyRequested {
			return ss.sendStatus(ctx)
		}
		return nil
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("source: wal data: %w", err)
		}
		ss.recvLSN = max(ss.recvLSN, xld.WALStart)
		if ss.unpublished++; ss.unpublished >= publishEvery {
			ss.publish()
		}
		if err := ss.handlePgoutput(ctx, xld.WALData); err != nil {
			return fmt.Errorf("source: at %s: %w", xld.WALStart, err)
		}
		return nil
	}
	return fmt.Errorf("source: unknown replication message type %q", data[0])
}

// handlePgoutput handles one pgoutput message. data is only valid until the
// next receive: whatever is kept is copied (the decoder copies tuple
// values, the spool copies raw messages to its buffer).
func (ss *session) handlePgoutput(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return errors.New("empty pgoutput message")
	}
	if ss.inStream && isTxnContent(data[0]) {
		if len(data) < 5 {
			return fmt.Errorf("in-stream %q message too short", data[0])
		}
		return ss.spool.write(binary.BigEndian.Uint32(data[1:5]), data)
	}
	if isRowChange(data[0]) {
		return ss.change(ctx, data, false)
	}
	msg, err := parseMessage(data, ss.inStream)
	if err != nil {
		return err
	}
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		return ss.begin(ctx, m)
	case *pglogrepl.CommitMessage:
		return ss.commit(ctx, m)
	case *pglogrepl.RelationMessageV2:
		ss.rels.update(&m.RelationMessage) // inside a stream too: at once, never spooled
		return nil
	case *pglogrepl.TypeMessageV2, *pglogrepl.OriginMessage:
		return nil // the apply maps types on the target by the relation's columns; origins are not filtered here
	case *pglogrepl.StreamStartMessageV2:
		ss.inStream = true
		return ss.spool.start(m.Xid, m.FirstSegment == 1)
	case *pglogrepl.StreamStopMessageV2:
		ss.inStream = false
		ss.publish()
		return ss.spool.stop()
	case *pglogrepl.StreamAbortMessageV2:
		return ss.streamAbort(m)
	case *pglogrepl.StreamCommitMessageV2:
		return ss.streamCommit(ctx, m)
	}
	return ss.emitChange(ctx, msg)
}

// isTxnContent reports the pgoutput message types that belong to a
// transaction's content: inside a stream block they are spooled.
func isTxnContent(t byte) bool {
	switch pglogrepl.MessageType(t) {
	case pglogrepl.MessageTypeInsert, pglogrepl.MessageTypeUpdate, pglogrepl.MessageTypeDelete,
		pglogrepl.MessageTypeTruncate, pglogrepl.MessageTypeMessage:
		return true
	}
	return false
}

func (ss *session) begin(ctx context.Context, m *pglogrepl.BeginMessage) error {
	if ss.txnOpen || ss.inStream {
		return fmt.Errorf("begin of xid %d inside another transaction or stream block", m.Xid)
	}
	ss.txnOpen, ss.txnXID, ss.txnCommitLSN = true, m.Xid, m.FinalLSN
	return ss.emit(ctx, &change.Change{Kind: change.Begin, XID: m.Xid, CommitLSN: m.FinalLSN, CommitTime: m.CommitTime})
}

func (ss *session) commit(ctx context.Context, m *pglogrepl.CommitMessage) error {
	if !ss.txnOpen {
		return fmt.Errorf("commit at %s without begin", m.CommitLSN)
	}
	c := &change.Change{Kind: change.Commit, XID: ss.txnXID, CommitLSN: m.CommitLSN,
		EndLSN: m.TransactionEndLSN, CommitTime: m.CommitTime}
	if err := ss.emit(ctx, c); err != nil {
		return err
	}
	ss.committed(c, false)
	return nil
}

// committed records that a transaction's Commit went out on out.
func (ss *session) committed(c *change.Change, streamed bool) {
	ss.txnOpen = false
	ss.lastSentEnd = max(ss.lastSentEnd, c.EndLSN)
	ss.updateStats(func(st *Stats) {
		ss.notePending(c.EndLSN, c.CommitTime)
		st.Transactions++
		if streamed {
			st.StreamedTxns++
		}
		ss.publishTo(st)
	})
}

// publish adds the session's counters to the Streamer's Stats.
func (ss *session) publish() { ss.updateStats(ss.publishTo) }

// publishTo adds the session's counters to st, under the Streamer's lock.
func (ss *session) publishTo(st *Stats) {
	st.ReceivedLSN = max(st.ReceivedLSN, ss.recvLSN)
	st.ServerWALEnd = max(st.ServerWALEnd, ss.serverWALEnd)
	st.Changes += ss.newChanges
	st.SpooledBytes, st.SpoolBytes = ss.spool.written, ss.spool.onDisk
	st.LastMessage = time.Now()
	ss.newChanges, ss.unpublished = 0, 0
}

// change decodes one message of the open transaction's content (see
// relationCache.decode) and sends it on.
func (ss *session) change(ctx context.Context, data []byte, inStream bool) error {
	c, err := ss.rels.decode(data, inStream)
	if err != nil || c == nil {
		return err
	}
	return ss.emitInTxn(ctx, c)
}

// emitChange sends on a TRUNCATE or a transactional logical message.
func (ss *session) emitChange(ctx context.Context, msg pglogrepl.Message) error {
	c, err := ss.rels.otherChange(msg)
	if err != nil || c == nil {
		return err
	}
	return ss.emitInTxn(ctx, c)
}

// emitInTxn sends c on as part of the open transaction.
func (ss *session) emitInTxn(ctx context.Context, c *change.Change) error {
	if !ss.txnOpen {
		return fmt.Errorf("%s outside a transaction", c.Kind)
	}
	c.XID, c.CommitLSN = ss.txnXID, ss.txnCommitLSN
	return ss.emit(ctx, c)
}

func (ss *session) streamAbort(m *pglogrepl.StreamAbortMessageV2) error {
	if err := ss.spool.abort(m.Xid, m.SubXid); err != nil {
		return err
	}
	ss.updateStats(func(st *Stats) { st.SpoolBytes = ss.spool.onDisk })
	return nil
}

// emit sends c on out. While out is full it keeps sending standby status
// on time: a client silent for wal_sender_timeout is dropped by the server.
func (ss *session) emit(ctx context.Context, c *change.Change) error {
	select {
	case ss.out <- c:
		ss.sent(c)
		return nil
	default:
	}
	ss.publish() // the apply is behind: Stats must not wait for it
	defer ss.timer.Stop()
	// The source is not read meanwhile: its silence counts from the end
	// of the wait.
	defer func() { ss.heard = time.Now() }()
	for {
		ss.timer.Reset(time.Until(ss.wakeAt()))
		select {
		case ss.out <- c:
			ss.sent(c)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-ss.timer.C:
		case <-ss.wake.ch:
		}
		if err := ss.statusIfDue(ctx); err != nil {
			return err
		}
	}
}

func (ss *session) sent(c *change.Change) {
	if c.Kind != change.Begin && c.Kind != change.Commit {
		ss.newChanges++
	}
}

// checkSilence fails when the source has sent nothing for the silence
// limit: not even an answer to the replies asked for from half of it. A
// network that drops packets gives no error, and the server, which ends
// its side after wal_sender_timeout without our status, cannot tell us.
func (ss *session) checkSilence() error {
	if d := time.Since(ss.heard); d >= ss.silence {
		return &endpoint.SilentError{Side: endpoint.Source, What: "the replication stream", Since: ss.heard, For: d}
	}
	return nil
}

// wakeAt is when the next standby status is due: the timer's, or sooner
// when the apply has moved the applied position since the last one.
func (ss *session) wakeAt() time.Time {
	at := ss.nextStatus
	if ss.wake.pending.Load() {
		if soon := ss.lastStatus.Add(ss.opts.StatusGap); soon.Before(at) {
			at = soon
		}
	}
	return at
}

// statusIfDue sends a standby status when one is due.
func (ss *session) statusIfDue(ctx context.Context) error {
	if time.Now().Before(ss.wakeAt()) {
		return nil
	}
	return ss.sendStatus(ctx)
}

// sendStatus sends a standby status update and schedules the next one.
// Flush and apply are the flush position: what the target has durably
// committed (its apply commits with synchronous_commit on). Write is what
// pglink has received and passed on to the apply, never less than flush;
// only flush moves the slot.
func (ss *session) sendStatus(ctx context.Context) error {
	ss.wake.pending.Store(false) // before reading applied: a later SetApplied pokes again
	// Only what the target has committed: a slot confirmed past a
	// transaction the target does not have loses it at the next reconnect.
	// Not the server's WAL end from a keepalive either, even when
	// everything received is applied (native apply does that): an idle
	// link's slot still advances, since the link's heartbeat is a
	// transaction in the source database, applied like any other.
	pos := max(change.LSN(ss.applied.Load()), ss.flushed)
	now := time.Now()
	ping := now.Sub(ss.heard) >= ss.silence/2
	// A send that cannot go out (a peer that stopped reading, a full
	// socket buffer) must not hang the session past the silence limit.
	if err := ss.conn.Conn().SetWriteDeadline(now.Add(ss.silence)); err != nil {
		return fmt.Errorf("source: send standby status: %w", err)
	}
	if err := sendStandbyStatus(ss.conn, max(pos, ss.lastSentEnd), pos, pos, ping); err != nil {
		if pgconn.Timeout(err) {
			return &endpoint.SilentError{Side: endpoint.Source, What: "the replication stream", Since: ss.heard, For: time.Since(ss.heard)}
		}
		return fmt.Errorf("source: send standby status: %w", err)
	}
	ss.flushed = pos
	ss.lastStatus = time.Now()
	ss.nextStatus = ss.lastStatus.Add(ss.opts.StatusInterval)
	ss.updateStats(func(st *Stats) { st.FlushedLSN = pos })
	return nil
}
