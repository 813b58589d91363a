package stream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// A spool file is a sequence of records, each one raw pgoutput message as
// the server sent it: a 4-byte big-endian length, then that many bytes.
// Messages are kept raw (not decoded) so that replay decodes them exactly as
// if they had just arrived, with the relation cache of that moment.

// maxRecordLen bounds one record. pgoutput sends one row per message and a
// field is at most 1 GB; a longer length can only come from a damaged file.
const maxRecordLen = 1<<30 + 1<<24

// readChunk is how much a record buffer grows at a time, so that a damaged
// length never makes the reader allocate more than the file really holds.
const readChunk = 64 << 10

// ErrCorruptSpool reports a spool file that does not parse as records.
var ErrCorruptSpool = errors.New("corrupt spool file")

// appendRecordHeader appends the length prefix of a record of n bytes.
func appendRecordHeader(dst []byte, n int) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

// recordReader reads spool records. The slice Next returns is valid until
// the following call: the reader reuses one buffer, so memory stays bounded
// by the largest record whatever the size of the file.
type recordReader struct {
	r   *bufio.Reader
	buf []byte
}

func newRecordReader(r io.Reader) *recordReader {
	return &recordReader{r: bufio.NewReaderSize(r, readChunk)}
}

// Next returns the next record, or io.EOF after the last complete one.
func (rr *recordReader) Next() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(rr.r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: truncated record header: %v", ErrCorruptSpool, err)
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n == 0 || n > maxRecordLen {
		return nil, fmt.Errorf("%w: record length %d out of range", ErrCorruptSpool, n)
	}
	rr.buf = rr.buf[:0]
	for len(rr.buf) < n {
		chunk := min(n-len(rr.buf), readChunk)
		rr.buf = slices.Grow(rr.buf, chunk)
		start := len(rr.buf)
		rr.buf = rr.buf[:start+chunk]
		if _, err := io.ReadFull(rr.r, rr.buf[start:]); err != nil {
			// Not wrapped: a caller must never take a cut record for io.EOF.
			return nil, fmt.Errorf("%w: record of %d bytes cut short: %v", ErrCorruptSpool, n, err)
		}
	}
	return rr.buf, nil
}
