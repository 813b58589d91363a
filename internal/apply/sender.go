package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/change"
)

// Flush thresholds: statements are sent as they come, and their results
// read and checked every flushStatements statements or flushBytes bytes of
// values, so a huge source transaction never sits in memory and an error
// surfaces soon.
const (
	flushStatements = 500
	flushBytes      = 4 << 20
)

// stmtSeq makes prepared statement names unique in the process: a name is
// never reused, so a statement whose Parse was skipped after an error, or
// one left by an earlier Applier on the same session, cannot collide.
var stmtSeq atomic.Uint64

// request is one queued request whose result is checked at the next flush.
type request struct {
	kind    requestKind
	what    string // control requests and prepares: what it does, for errors
	at      change.LSN
	tbl     *table
	chg     *change.Change // row changes
	where   change.Tuple   // row changes: the identifying tuple, for conflict reports
	st      *stmt          // preparations: the statement prepared
	stmtKey string         // preparations: the statement's key in tbl.stmts or tbl.bulk
	commit  bool           // a COMMIT: its command tag must say COMMIT (see check)
}

type requestKind uint8

const (
	reqControl requestKind = iota // BEGIN, COMMIT, origin and progress statements, TRUNCATE
	reqPrepare
	reqRow
	reqBulkPrepare // a set-based statement's Parse: its failure is a bulkError
	reqBulk        // a set-based statement: its failure is a bulkError
	reqSync        // the Sync that ends a batch sent alone (sendBatch)
)

// sender writes requests into a pgconn pipeline. pgconn's pipeline mode
// sends the extended-protocol messages without waiting; the results come
// back in order, each of which is checked.
//
// A batch (sendBatch) goes out with a flush request and no Sync, so it may
// go behind batches still in flight: when a statement fails, the server
// skips everything up to the next Sync, the batches behind included, and
// the open target transaction stays open, aborted, for the fallback (see
// readBatch). A batch that nothing will follow soon ends with a Sync
// instead, so reading it back ends the pipeline in the same round trip;
// nothing may go behind it. flush sends a Sync (when anything was queued
// since the last one) and reads everything.
type sender struct {
	conn        *pgconn.PgConn
	log         *slog.Logger
	pipe        *pgconn.Pipeline
	pending     []request // queued or sent, results not read yet, in order
	queuedBytes int       // of the requests not sent yet
	conflicts   int64     // UPDATE/DELETE that found no row, since takeConflicts
	inflight    []int     // the number of requests of each batch sent and not read, oldest first
	behind      bool      // what is queued may go behind the batches in flight (queueBehind)
	unsynced    bool      // requests were queued since the last Sync
}

func (s *sender) start(ctx context.Context) {
	if len(s.inflight) > 0 && !s.behind {
		// Only a whole batch may go behind batches in flight: anything
		// else would run even when one of them failed, or be skipped with
		// no way to send it again.
		panic("apply: request queued while a batch is in flight")
	}
	if s.pipe == nil {
		s.pipe = s.conn.StartPipeline(ctx)
	}
	s.unsynced = true
}

// queueBehind allows the next batch to be queued behind the batches in
// flight, until sendBatch sends it.
func (s *sender) queueBehind() { s.behind = true }

// control queues a statement without parameters of its own.
func (s *sender) control(ctx context.Context, sql string, args [][]byte, oids []uint32, what string, at change.LSN) {
	s.start(ctx)
	s.pipe.SendQueryParams(sql, args, oids, nil, nil)
	s.pending = append(s.pending, request{kind: reqControl, what: what, at: at})
	s.queuedBytes += len(sql) + 64
}

// commit queues the COMMIT of the open target transaction; check makes
// sure the server answered COMMIT, not ROLLBACK.
func (s *sender) commit(ctx context.Context, at change.LSN) {
	s.control(ctx, "COMMIT", nil, nil, "commit target transaction", at)
	s.pending[len(s.pending)-1].commit = true
}

// prepare queues the Parse of st, t.stmts[key], giving it its name.
func (s *sender) prepare(ctx context.Context, t *table, st *stmt, key string, at change.LSN) {
	s.start(ctx)
	st.name = fmt.Sprintf("pglink_apply_%d", stmtSeq.Add(1))
	s.pipe.SendPrepare(st.name, st.sql, st.paramOIDs)
	s.pending = append(s.pending, request{kind: reqPrepare, what: "prepare statement for " + t.quoted, at: at, tbl: t, st: st, stmtKey: key})
	s.queuedBytes += len(st.sql) + 64
}

// row queues the execution of a prepared row statement.
func (s *sender) row(ctx context.Context, t *table, st *stmt, c *change.Change, where change.Tuple, args [][]byte, fmts []int16) {
	s.start(ctx)
	s.pipe.SendQueryPrepared(st.name, args, fmts, nil)
	s.pending = append(s.pending, request{kind: reqRow, tbl: t, chg: c, where: where, at: c.CommitLSN})
	n := 64
	for _, a := range args {
		n += len(a)
	}
	s.queuedBytes += n
}

// prepareBulk queues the Parse of a set-based statement.
func (s *sender) prepareBulk(ctx context.Context, t *table, st *stmt, key string, at change.LSN) {
	s.start(ctx)
	st.name = fmt.Sprintf("pglink_apply_%d", stmtSeq.Add(1))
	s.pipe.SendPrepare(st.name, st.sql, st.paramOIDs)
	s.pending = append(s.pending, request{kind: reqBulkPrepare, what: "prepare set-based statement for " + t.quoted, at: at, tbl: t, st: st, stmtKey: key})
	s.queuedBytes += len(st.sql) + 64
}

// bulk queues the execution of a set-based statement.
func (s *sender) bulk(ctx context.Context, t *table, st *stmt, op byte, args [][]byte, fmts []int16, at change.LSN) {
	s.start(ctx)
	s.pipe.SendQueryPrepared(st.name, args, fmts, nil)
	s.pending = append(s.pending, request{kind: reqBulk, what: bulkWhat(op) + " " + t.quoted, at: at, tbl: t})
	n := 64
	for _, a := range args {
		n += len(a)
	}
	s.queuedBytes += n
}

func bulkWhat(op byte) string {
	switch op {
	case bulkDelete:
		return "set-based DELETE from"
	case bulkUpdate:
		return "set-based UPDATE on"
	}
	return "set-based INSERT into"
}

// unsent counts the statements queued and not sent yet.
func (s *sender) unsent() int {
	n := len(s.pending)
	for _, k := range s.inflight {
		n -= k
	}
	return n
}

// full reports whether enough is queued to flush.
func (s *sender) full() bool {
	return len(s.pending) >= flushStatements || s.queuedBytes >= flushBytes
}

// sendBatch sends what was queued since the last batch, with a flush
// request and no Sync, or with a Sync when sync is set: readBatch reads
// its results.
func (s *sender) sendBatch(sync bool) error {
	s.behind = false
	n := s.unsent()
	if s.pipe == nil || n == 0 {
		s.inflight = append(s.inflight, 0) // nothing to read back, but one batch all the same
		return nil
	}
	if sync {
		s.pipe.SendPipelineSync()
		s.pending = append(s.pending, request{kind: reqSync, what: "end the batch"})
		s.unsynced = false
		n++
	} else {
		s.pipe.SendFlushRequest()
	}
	if err := s.pipe.Flush(); err != nil {
		pipe := s.pipe
		s.reset()
		return errors.Join(fmt.Errorf("send to target: %w", err), pipe.Close())
	}
	s.inflight = append(s.inflight, n)
	s.queuedBytes = 0
	return nil
}

// sendPart sends what is queued with a flush request, as the first part
// of a batch: the rest is queued later, and sendBatch sends it and counts
// both parts as one batch.
func (s *sender) sendPart() error {
	if s.pipe == nil {
		return nil
	}
	s.pipe.SendFlushRequest()
	if err := s.pipe.Flush(); err != nil {
		pipe := s.pipe
		s.reset()
		return errors.Join(fmt.Errorf("send to target: %w", err), pipe.Close())
	}
	s.queuedBytes = 0
	return nil
}

// readBatch reads and checks the results of the oldest batch in flight.
// On an error the server skipped the rest up to the next Sync, the
// batches behind it included (whose preparations are forgotten): readBatch
// then sends a Sync, reads up to it, and returns the error with nothing
// left in flight. The failed batch's transaction is still open, aborted.
func (s *sender) readBatch() error {
	n := s.inflight[0]
	for i := range n {
		if err := s.check(s.pipe, &s.pending[i]); err != nil {
			s.forgetSkipped(i + 1)
			pipe, unsynced := s.pipe, s.unsynced
			s.reset()
			if s.conn.IsClosed() || !unsynced {
				// A broken connection (pgconn is closing it in the
				// background, and nothing more may be written), or the
				// batch ended with its own Sync and nothing is behind it.
				return errors.Join(err, pipe.Close())
			}
			if serr := pipe.Sync(); serr != nil {
				return errors.Join(err, fmt.Errorf("send to target: %w", serr), pipe.Close())
			}
			return errors.Join(err, pipe.Close()) // Close reads up to the Sync; a server error is err
		}
	}
	clear(s.pending[:n])
	s.pending = append(s.pending[:0], s.pending[n:]...)
	s.inflight = append(s.inflight[:0], s.inflight[1:]...)
	return nil
}

// flush sends what is queued with a Sync, reads every result in order,
// the batches in flight included, and returns the first error, described
// with its table and source position. After an error the server skips
// the rest up to the Sync, and an open target transaction is aborted.
func (s *sender) flush() error {
	if s.pipe == nil {
		return nil
	}
	pipe := s.pipe
	defer s.reset()
	if s.unsynced {
		if err := pipe.Sync(); err != nil {
			return errors.Join(fmt.Errorf("send to target: %w", err), pipe.Close())
		}
	}
	var firstErr error
	for i := range s.pending {
		if err := s.check(pipe, &s.pending[i]); err != nil {
			firstErr = err
			s.forgetSkipped(i + 1)
			break
		}
	}
	// Close reads up to the Sync's ReadyForQuery; a server error is
	// already in firstErr.
	if err := pipe.Close(); err != nil && firstErr == nil {
		firstErr = fmt.Errorf("target pipeline: %w", err)
	}
	return firstErr
}

// reset forgets the pipeline and every request (and the changes they
// point to).
func (s *sender) reset() {
	s.pipe = nil
	clear(s.pending)
	s.pending, s.queuedBytes, s.inflight, s.behind, s.unsynced = s.pending[:0], 0, s.inflight[:0], false, false
}

// forgetSkipped forgets the statements whose preparation is among
// pending[from:], which the server skipped after an error: the next use
// prepares them again.
func (s *sender) forgetSkipped(from int) {
	for _, req := range s.pending[from:] {
		switch req.kind {
		case reqPrepare:
			if req.tbl.stmts[req.stmtKey] == req.st {
				delete(req.tbl.stmts, req.stmtKey)
			}
		case reqBulkPrepare:
			if req.tbl.bulk[req.stmtKey] == req.st {
				delete(req.tbl.bulk, req.stmtKey)
			}
		}
	}
}

func (s *sender) check(pipe *pgconn.Pipeline, req *request) error {
	res, err := pipe.GetResults()
	if err == nil {
		switch r := res.(type) {
		case *pgconn.ResultReader:
			var tag pgconn.CommandTag
			tag, err = r.Close()
			if err == nil && req.kind == reqRow && tag.RowsAffected() == 0 && req.chg.Kind != change.Insert {
				s.conflict(req)
			}
			// COMMIT of a transaction that an earlier error aborted answers
			// ROLLBACK, without an error of its own: nothing was applied.
			if err == nil && req.commit && tag.String() != "COMMIT" {
				err = fmt.Errorf("the target answered %s: its transaction had been aborted", tag)
			}
		case *pgconn.StatementDescription:
		case *pgconn.PipelineSync:
			if req.kind != reqSync {
				err = errors.New("unexpected pipeline sync")
			}
		default:
			err = fmt.Errorf("unexpected pipeline result %T", res)
		}
	}
	if err == nil {
		return nil
	}
	switch req.kind {
	case reqBulk:
		return &bulkError{err: fmt.Errorf("%s at source %s: %w", req.what, req.at, err), tbl: req.tbl}
	case reqBulkPrepare:
		return &bulkError{err: fmt.Errorf("%s at source %s: %w", req.what, req.at, err), tbl: req.tbl, prep: req.stmtKey}
	case reqRow:
		return fmt.Errorf("apply %s %s %s at source %s: %w", req.chg.Kind, preposition(req.chg.Kind), req.tbl.quoted, req.at, err)
	default:
		return fmt.Errorf("%s at source %s: %w", req.what, req.at, err)
	}
}

// conflict records an UPDATE or DELETE that found no row. Native apply
// logs it and goes on; so does pglink, counting it.
func (s *sender) conflict(req *request) {
	s.conflicts++
	s.log.Warn("apply: row to change not found on the target", "op", req.chg.Kind.String(),
		"table", req.tbl.quoted, "key", describeKey(req.tbl, req.where), "source_lsn", req.at.String())
}

func (s *sender) takeConflicts() int64 {
	n := s.conflicts
	s.conflicts = 0
	return n
}

func preposition(k change.Kind) string {
	switch k {
	case change.Insert:
		return "into"
	case change.Delete:
		return "from"
	}
	return "on"
}

// describeKey renders the identifying columns of a row for a log line,
// each value cut short.
func describeKey(t *table, where change.Tuple) string {
	var b strings.Builder
	full := t.rel.ReplicaIdentity == change.IdentityFull
	for i, col := range t.rel.Columns {
		if (!full && !col.Key) || i >= len(where) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.cols[i].quoted + "=")
		switch v := where[i]; v.Kind {
		case change.ValueNull:
			b.WriteString("NULL")
		case change.ValueUnchanged:
			b.WriteString("(unchanged)")
		case change.ValueBinary:
			d := v.Data
			if len(d) > 32 {
				d = d[:32]
			}
			fmt.Fprintf(&b, "(binary %x)", d)
		default:
			d := v.Data
			if len(d) > 64 {
				d = d[:64]
			}
			fmt.Fprintf(&b, "%q", d)
		}
	}
	return b.String()
}
