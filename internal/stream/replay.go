package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pglogrepl"

	"github.com/pglink/pglink/internal/change"
)

// streamCommit replays a streamed transaction that the source committed:
// Begin, every spooled change read back one record at a time (so memory
// stays bounded whatever the transaction's size), Commit. The file is
// removed afterwards.
func (ss *session) streamCommit(ctx context.Context, m *pglogrepl.StreamCommitMessageV2) error {
	if ss.inStream {
		return fmt.Errorf("stream commit of xid %d inside a stream block", m.Xid)
	}
	t, ok, err := ss.spool.finish(m.Xid)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("stream commit of xid %d, which was never streamed", m.Xid)
	}
	ss.txnOpen, ss.txnXID, ss.txnCommitLSN = true, m.Xid, m.CommitLSN
	begin := &change.Change{Kind: change.Begin, XID: m.Xid, CommitLSN: m.CommitLSN, CommitTime: m.CommitTime}
	if err := ss.emit(ctx, begin); err != nil {
		return err
	}
	records, err := ss.replayFile(ctx, t.path)
	if err != nil {
		return fmt.Errorf("replay streamed xid %d: %w", m.Xid, err)
	}
	if err := ss.spool.discard(t); err != nil {
		return err
	}
	c := &change.Change{Kind: change.Commit, XID: m.Xid, CommitLSN: m.CommitLSN,
		EndLSN: m.TransactionEndLSN, CommitTime: m.CommitTime}
	if err := ss.emit(ctx, c); err != nil {
		return err
	}
	ss.committed(c, true)
	ss.log.Debug("streamed transaction replayed", "xid", m.Xid, "commit_lsn", m.CommitLSN.String(),
		"end_lsn", m.TransactionEndLSN.String(), "records", records, "spooled_bytes", t.size)
	return nil
}

// replayFile decodes and emits each record of a spool file, as part of the
// open transaction, and returns how many it replayed.
func (ss *session) replayFile(ctx context.Context, path string) (records int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open spool file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close spool file: %w", cerr)
		}
	}()
	rr := newRecordReader(f)
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return records, nil
		}
		if err != nil {
			return records, err
		}
		if err := ss.change(ctx, rec, true); err != nil {
			return records, err
		}
		records++
	}
}
