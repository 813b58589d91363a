package stream

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/pglink/pglink/internal/change"
)

// Row messages (Insert, Update, Delete) are most of what the stream
// carries, so they are decoded here, straight into a Change, rather than
// through pglogrepl's messages: one copy of the message's bytes, which
// every value points into, one Tuple per row image and the Change itself,
// instead of an allocation per value and a message struct per change.
// The result is the same (stream tests compare the two on every message
// the fuzzer makes); other message types still go through pglogrepl.

// isRowChange reports the message types rowMessage decodes.
func isRowChange(t byte) bool {
	switch pglogrepl.MessageType(t) {
	case pglogrepl.MessageTypeInsert, pglogrepl.MessageTypeUpdate, pglogrepl.MessageTypeDelete:
		return true
	}
	return false
}

// rowMessage decodes an Insert, Update or Delete message (inStream: the
// (sub)transaction's xid comes first) into a Change whose CommitLSN and
// XID are the caller's to set. data may be reused after it returns.
func (rc relationCache) rowMessage(data []byte, inStream bool) (*change.Change, error) {
	c, err := rc.decodeRow(data, inStream)
	if err != nil {
		return nil, fmt.Errorf("malformed pgoutput message of type %q (%d bytes): %w", data[0], len(data), err)
	}
	return c, nil
}

func (rc relationCache) decodeRow(data []byte, inStream bool) (*change.Change, error) {
	var kind change.Kind
	switch pglogrepl.MessageType(data[0]) {
	case pglogrepl.MessageTypeInsert:
		kind = change.Insert
	case pglogrepl.MessageTypeUpdate:
		kind = change.Update
	case pglogrepl.MessageTypeDelete:
		kind = change.Delete
	default:
		return nil, fmt.Errorf("not a row message")
	}
	b := data[1:]
	if inStream {
		if len(b) < 4 {
			return nil, errShort
		}
		b = b[4:]
	}
	if len(b) < 5 {
		return nil, errShort
	}
	rel, err := rc.get(binary.BigEndian.Uint32(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	b = bytes.Clone(b[4:]) // the values point into this copy
	c := &change.Change{Kind: kind, Rel: rel}
	tag := b[0]
	switch {
	case kind != change.Insert && (tag == 'K' || tag == 'O'):
		if c.Old, b, err = decodeTuple(rel, b[1:]); err != nil {
			return nil, fmt.Errorf("%s %s: old row: %w", kind, rel.QualifiedName(), err)
		}
		if kind == change.Delete {
			return c, noTrailing(b)
		}
		if len(b) < 1 {
			return nil, errShort
		}
		tag = b[0]
	case kind == change.Delete:
		return nil, fmt.Errorf("delete: old row tag %q, want 'K' or 'O'", tag)
	}
	if tag != 'N' {
		return nil, fmt.Errorf("%s: new row tag %q, want 'N'", kind, tag)
	}
	if c.New, b, err = decodeTuple(rel, b[1:]); err != nil {
		return nil, fmt.Errorf("%s %s: new row: %w", kind, rel.QualifiedName(), err)
	}
	return c, noTrailing(b)
}

func noTrailing(b []byte) error {
	if len(b) > 0 {
		return fmt.Errorf("%d trailing bytes after the last row", len(b))
	}
	return nil
}

// emptyValue is the Data of a zero-length value: never nil, which would
// mean NULL as a statement parameter.
var emptyValue = []byte{}

// decodeTuple decodes one TupleData of rel from b and returns what follows
// it. Values point into b.
func decodeTuple(rel *change.Relation, b []byte) (change.Tuple, []byte, error) {
	if len(b) < 2 {
		return nil, nil, errShort
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n != len(rel.Columns) {
		return nil, nil, fmt.Errorf("%d values for %d announced columns", n, len(rel.Columns))
	}
	t := make(change.Tuple, n)
	for i := range t {
		if len(b) < 1 {
			return nil, nil, errShort
		}
		kind := b[0]
		b = b[1:]
		switch kind {
		case change.ValueNull, change.ValueUnchanged:
			t[i] = change.Value{Kind: kind}
		case change.ValueText, change.ValueBinary:
			if len(b) < 4 {
				return nil, nil, errShort
			}
			size := uint64(binary.BigEndian.Uint32(b))
			b = b[4:]
			if size > uint64(len(b)) {
				return nil, nil, fmt.Errorf("column %s: value of %d bytes in %d", rel.Columns[i].Name, size, len(b))
			}
			v := emptyValue
			if size > 0 {
				v = b[:size:size]
			}
			t[i] = change.Value{Kind: kind, Data: v}
			b = b[size:]
		default:
			return nil, nil, fmt.Errorf("column %s: unknown value kind %q", rel.Columns[i].Name, kind)
		}
	}
	return t, b, nil
}
