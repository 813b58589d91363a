package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// inStreamInsert hand-builds a pgoutput protocol 2 in-stream Insert
// message: 'I', xid, relation id, 'N', one text column.
func inStreamInsert(xid, relID uint32, value string) []byte {
	b := []byte{'I'}
	b = binary.BigEndian.AppendUint32(b, xid)
	b = binary.BigEndian.AppendUint32(b, relID)
	b = append(b, 'N')
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, 't')
	b = binary.BigEndian.AppendUint32(b, uint32(len(value)))
	return append(b, value...)
}

func readAllRecords(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rr := newRecordReader(f)
	var recs [][]byte
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return recs
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, bytes.Clone(rec))
	}
}

// values decodes the spooled inserts of path and returns their values.
func values(t *testing.T, path string) []string {
	t.Helper()
	rels := relationCache{}
	rels[7] = testRelation(7)
	var got []string
	for _, rec := range readAllRecords(t, path) {
		c, err := rels.decode(rec, true)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(c.New[0].Data))
	}
	return got
}

func TestSpoolSubtransactionAbort(t *testing.T) {
	dir := t.TempDir()
	leftover := filepath.Join(dir, "99"+spoolSuffix)
	other := filepath.Join(dir, "keep.txt")
	for _, p := range []string{leftover, other} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sp, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover spool file not removed: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("unrelated file touched: %v", err)
	}

	const top, sub1, sub2, sub3 = 100, 101, 102, 103
	write := func(xid uint32, v string) {
		t.Helper()
		if err := sp.write(xid, inStreamInsert(xid, 7, v)); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sp.start(top, true))
	write(top, "t1")
	write(sub1, "s1a")
	must(sp.stop())
	must(sp.start(top, false))
	write(sub1, "s1b")
	write(sub2, "s2a") // starts after sub1: cut with it later
	write(sub3, "s3a")
	must(sp.stop())
	must(sp.abort(top, sub3))
	t.Run("abort last subxact", func(t *testing.T) {
		tx, _, _ := sp.finish(top)
		if got, want := values(t, tx.path), []string{"t1", "s1a", "s1b", "s2a"}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	must(sp.start(top, false))
	write(top, "t2")
	write(sub3, "s3b") // sub3 was forgotten: it is new again
	must(sp.stop())
	must(sp.abort(top, sub1)) // cuts sub1 and everything after its first change
	must(sp.abort(top, 555))  // unknown subxact: nothing to do
	must(sp.abort(777, 777))  // unknown transaction: nothing to do
	tx, ok, err := sp.finish(top)
	if err != nil || !ok {
		t.Fatalf("finish: %v %v", ok, err)
	}
	if got, want := values(t, tx.path), []string{"t1"}; !slices.Equal(got, want) {
		t.Errorf("after aborting sub1: got %v, want %v", got, want)
	}
	if st, err := os.Stat(tx.path); err != nil || st.Size() != sp.onDisk {
		t.Errorf("file size %v (%v), spool says %d on disk", st.Size(), err, sp.onDisk)
	}
	must(sp.discard(tx))
	if !sp.empty() || sp.onDisk != 0 {
		t.Errorf("spool not empty after discard: %d txns, %d bytes", len(sp.txns), sp.onDisk)
	}
	if sp.written == 0 {
		t.Error("written counter not kept")
	}
}

func TestSpoolTopAbortAndProtocolErrors(t *testing.T) {
	dir := t.TempDir()
	sp, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.start(5, false); err == nil {
		t.Error("continuing a stream never started: want an error")
	}
	if err := sp.write(5, inStreamInsert(5, 7, "x")); err == nil {
		t.Error("write outside a stream block: want an error")
	}
	if err := sp.start(5, true); err != nil {
		t.Fatal(err)
	}
	if err := sp.start(6, true); err == nil {
		t.Error("nested stream start: want an error")
	}
	if err := sp.write(5, inStreamInsert(5, 7, "x")); err != nil {
		t.Fatal(err)
	}
	if err := sp.stop(); err != nil {
		t.Fatal(err)
	}
	if err := sp.start(8, true); err != nil {
		t.Fatal(err)
	}
	if err := sp.write(8, inStreamInsert(8, 7, "y")); err != nil {
		t.Fatal(err)
	}
	if err := sp.abort(5, 5); err != nil {
		t.Fatal(err)
	}
	// A first segment again (a restarted decoding) starts the file afresh.
	if err := sp.stop(); err != nil {
		t.Fatal(err)
	}
	if err := sp.start(8, true); err != nil {
		t.Fatal(err)
	}
	if err := sp.write(8, inStreamInsert(8, 7, "z")); err != nil {
		t.Fatal(err)
	}
	if err := sp.stop(); err != nil {
		t.Fatal(err)
	}
	tx, _, _ := sp.finish(8)
	if got, want := values(t, tx.path), []string{"z"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if err := sp.removeAll(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("files left after removeAll: %v", entries)
	}
}

func TestRecordReaderErrors(t *testing.T) {
	valid := appendRecordHeader(nil, 3)
	valid = append(valid, "abc"...)
	for name, data := range map[string][]byte{
		"short header": valid[:2],
		"short body":   valid[:5],
		"zero length":  {0, 0, 0, 0},
		"huge length":  {0xff, 0xff, 0xff, 0xff, 1},
	} {
		rr := newRecordReader(bytes.NewReader(data))
		if _, err := rr.Next(); !errors.Is(err, ErrCorruptSpool) {
			t.Errorf("%s: got %v, want ErrCorruptSpool", name, err)
		}
	}
	rr := newRecordReader(bytes.NewReader(valid))
	if rec, err := rr.Next(); err != nil || string(rec) != "abc" {
		t.Errorf("got %q %v", rec, err)
	}
	if _, err := rr.Next(); err != io.EOF {
		t.Errorf("after last record: got %v, want io.EOF", err)
	}
}

// Every cut message must come back as an error, not a panic.
func TestParseMessageMalformed(t *testing.T) {
	rels := relationCache{7: testRelation(7)}
	full := inStreamInsert(1, 7, strings.Repeat("v", 20))
	if _, err := rels.decode(full, true); err != nil {
		t.Fatalf("whole message: %v", err)
	}
	for n := 0; n < len(full); n++ {
		if _, err := rels.decode(full[:n], true); err == nil {
			t.Errorf("message cut to %d of %d bytes: want an error", n, len(full))
		}
	}
}
