package stream

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// spoolFile builds a spool file's bytes from messages.
func spoolFile(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = appendRecordHeader(b, len(m))
		b = append(b, m...)
	}
	return b
}

// FuzzSpoolRecords reads arbitrary bytes as a spool file and decodes each
// record as an in-stream pgoutput message, as replay does. Whatever the
// input: no panic, every record read is exactly what the file held, and
// reading stops at io.EOF only at a record boundary.
// Run with: go test -fuzz FuzzSpoolRecords ./internal/stream/
func FuzzSpoolRecords(f *testing.F) {
	ins := inStreamInsert(700, 7, "hello")
	f.Add(spoolFile(ins, inStreamInsert(701, 7, "")))
	f.Add(spoolFile(ins)[:7])
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 'I'})
	f.Add(spoolFile([]byte{'U', 0, 0, 2, 188, 0, 0, 0, 7, 'K', 0, 1, 't', 0, 0, 0, 1, '1', 'N', 0, 1, 'u'}))
	f.Add(spoolFile([]byte{'T', 0, 0, 2, 188, 0, 0, 0, 1, 1, 0, 0, 0, 7}))
	f.Add(spoolFile([]byte{'M', 0, 0, 2, 188, 1, 0, 0, 0, 0, 0, 0, 0, 1, 'p', 0, 0, 0, 0, 2, 'h', 'b'}))
	f.Fuzz(func(t *testing.T, data []byte) {
		rels := relationCache{7: testRelation(7)}
		rr := newRecordReader(bytes.NewReader(data))
		var reencoded []byte
		for {
			rec, err := rr.Next()
			if errors.Is(err, io.EOF) {
				if !bytes.Equal(reencoded, data) {
					t.Fatalf("EOF after %d of %d bytes", len(reencoded), len(data))
				}
				return
			}
			if err != nil {
				if !errors.Is(err, ErrCorruptSpool) {
					t.Fatalf("error not marked corrupt: %v", err)
				}
				return
			}
			reencoded = append(appendRecordHeader(reencoded, len(rec)), rec...)
			if !bytes.HasPrefix(data, reencoded) {
				t.Fatal("record differs from the file's bytes")
			}
			_, _ = rels.decode(rec, true) // must not panic either
		}
	})
}
