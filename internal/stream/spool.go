package stream

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// spoolSuffix names the files this package writes, so that the leftovers
// of a stream that crashed can be removed without touching anything else.
const spoolSuffix = ".pglink-spool"

// spool holds the changes of streamed transactions (pgoutput protocol 2,
// PostgreSQL 14+) on disk, one file per top-level transaction, from the
// first StreamStart until StreamCommit or StreamAbort. At most one file is
// open for writing at a time - the one of the current stream block - so
// many concurrent large transactions do not use many descriptors.
type spool struct {
	dir     string
	txns    map[uint32]*spooledTxn
	current *spooledTxn // transaction of the open stream block, or nil

	written int64 // bytes written since the spool was made
	onDisk  int64 // bytes in files now
}

// spooledTxn is one streamed transaction's file. subxacts records, in the
// order they first appear, the offset of each subtransaction's first change,
// as native apply does (subxact_info_add): aborting a subtransaction cuts
// the file there, and every subtransaction that started later goes with it,
// since a subtransaction that began after another is nested in it or
// follows it within the aborted part.
type spooledTxn struct {
	xid      uint32
	path     string
	file     *os.File
	w        *bufio.Writer
	size     int64
	subxacts []subxact
	seen     map[uint32]bool
	lastSub  uint32
	hdrBuf   []byte
}

type subxact struct {
	xid    uint32
	offset int64
}

// openSpool creates dir when missing and removes spool files a previous
// run left there: after a restart the server streams every transaction it
// had not finished again, from its first segment.
func openSpool(dir string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create directory: %w", err)
	}
	if _, err := removeSpoolFiles(dir); err != nil {
		return nil, err
	}
	return &spool{dir: dir, txns: make(map[uint32]*spooledTxn)}, nil
}

// RemoveSpoolDir removes the spool files in dir, and dir itself when
// nothing else is left in it: the leftovers of a stream that no longer
// runs. A missing dir is no error.
func RemoveSpoolDir(dir string) error {
	kept, err := removeSpoolFiles(dir)
	if err != nil || kept > 0 {
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: remove %s: %w", dir, err)
	}
	return nil
}

// removeSpoolFiles removes the spool files in dir and counts the other
// entries it keeps. A missing dir holds nothing.
func removeSpoolFiles(dir string) (kept int, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("spool: list %s: %w", dir, err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), spoolSuffix) {
			kept++
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return kept, fmt.Errorf("spool: remove leftover %s: %w", filepath.Join(dir, e.Name()), err)
		}
	}
	return kept, nil
}

// empty reports whether no streamed transaction is open.
func (s *spool) empty() bool { return len(s.txns) == 0 }

// start begins a stream block of xid. firstSegment starts the transaction
// afresh (a file from an earlier, unfinished attempt is discarded).
func (s *spool) start(xid uint32, firstSegment bool) error {
	if s.current != nil {
		return fmt.Errorf("spool: stream start of xid %d inside the stream of xid %d", xid, s.current.xid)
	}
	t := s.txns[xid]
	if t == nil && !firstSegment {
		return fmt.Errorf("spool: stream of xid %d continues but its first segment was never received", xid)
	}
	if t != nil && firstSegment {
		if err := s.discard(t); err != nil {
			return err
		}
		t = nil
	}
	if t == nil {
		name := strconv.FormatUint(uint64(xid), 10) + spoolSuffix
		t = &spooledTxn{xid: xid, path: filepath.Join(s.dir, name), seen: make(map[uint32]bool)}
		s.txns[xid] = t
	}
	f, err := os.OpenFile(t.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: open xid %d: %w", xid, err)
	}
	t.file, t.w = f, bufio.NewWriterSize(f, readChunk)
	s.current = t
	return nil
}

// write appends one raw message of the current stream block. subxid is the
// (sub)transaction the message names.
func (s *spool) write(subxid uint32, msg []byte) error {
	t := s.current
	if t == nil {
		return errors.New("spool: change outside a stream block")
	}
	if subxid != t.xid && subxid != t.lastSub && !t.seen[subxid] {
		t.subxacts = append(t.subxacts, subxact{xid: subxid, offset: t.size})
		t.seen[subxid] = true
	}
	t.lastSub = subxid
	t.hdrBuf = appendRecordHeader(t.hdrBuf[:0], len(msg))
	if _, err := t.w.Write(t.hdrBuf); err != nil {
		return fmt.Errorf("spool: write xid %d: %w", t.xid, err)
	}
	if _, err := t.w.Write(msg); err != nil {
		return fmt.Errorf("spool: write xid %d: %w", t.xid, err)
	}
	n := int64(len(t.hdrBuf) + len(msg))
	t.size += n
	s.written += n
	s.onDisk += n
	return nil
}

// stop ends the current stream block: its data goes to the file, which is
// closed until the next block of the transaction.
func (s *spool) stop() error {
	t := s.current
	if t == nil {
		return errors.New("spool: stream stop without stream start")
	}
	s.current = nil
	return t.close()
}

func (t *spooledTxn) close() error {
	if t.file == nil {
		return nil
	}
	err := t.w.Flush()
	if cerr := t.file.Close(); err == nil {
		err = cerr
	}
	t.file, t.w = nil, nil
	if err != nil {
		return fmt.Errorf("spool: close xid %d: %w", t.xid, err)
	}
	return nil
}

// abort drops subxid's changes (and those of every subtransaction that
// started after it) from xid's file, or the whole file when subxid is xid.
// An xid or subxid with nothing spooled has nothing to drop.
func (s *spool) abort(xid, subxid uint32) error {
	t := s.txns[xid]
	if t == nil {
		return nil
	}
	if s.current == t {
		s.current = nil
	}
	if err := t.close(); err != nil {
		return err
	}
	if subxid == xid {
		return s.discard(t)
	}
	i := 0
	for i < len(t.subxacts) && t.subxacts[i].xid != subxid {
		i++
	}
	if i == len(t.subxacts) {
		return nil
	}
	offset := t.subxacts[i].offset
	if err := os.Truncate(t.path, offset); err != nil {
		return fmt.Errorf("spool: cut subtransaction %d of xid %d: %w", subxid, xid, err)
	}
	for _, sx := range t.subxacts[i:] {
		delete(t.seen, sx.xid)
	}
	t.subxacts = t.subxacts[:i]
	t.lastSub = 0
	s.onDisk -= t.size - offset
	t.size = offset
	return nil
}

// finish hands over xid's file for replay: the caller reads path and then
// calls discard. ok is false when nothing was spooled for xid.
func (s *spool) finish(xid uint32) (t *spooledTxn, ok bool, err error) {
	t = s.txns[xid]
	if t == nil {
		return nil, false, nil
	}
	if s.current == t {
		s.current = nil
	}
	return t, true, t.close()
}

// discard closes and removes t's file and forgets t.
func (s *spool) discard(t *spooledTxn) error {
	if s.current == t {
		s.current = nil
	}
	err := t.close()
	delete(s.txns, t.xid)
	s.onDisk -= t.size
	if rerr := os.Remove(t.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = fmt.Errorf("spool: remove xid %d: %w", t.xid, rerr)
	}
	return err
}

// removeAll closes and removes every file; the spool is empty afterwards.
func (s *spool) removeAll() error {
	var errs []error
	for _, t := range s.txns {
		errs = append(errs, s.discard(t))
	}
	return errors.Join(errs...)
}
