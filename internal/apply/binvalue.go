package apply

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/pglink/pglink/internal/change"
)

// Values in binary form (pgoutput's binary option, see stream.Options.Binary)
// pass through the apply untouched: as binary parameters declared with the
// column's type in row statements, and as elements of binary arrays in
// set-based statements. PostgreSQL reads them with the type's receive
// function, which checks them as the input function checks text. This is
// right only when the target's column has the very type the source's send
// function wrote: a built-in type (OID below FirstNormalObjectId), which
// has the same OID and binary form in every database, and the same type on
// both sides. Any other binary value stops the apply with a
// BinaryValueError before it is applied: the link then streams in text.

// firstNormalOID is PostgreSQL's FirstNormalObjectId: types below it are
// built in, with the same OID in every database.
const firstNormalOID = 16384

// BinaryValueError says that the source sent a value in binary form for a
// column whose binary form the apply cannot pass to the target: a column
// of a user-defined type (added by a schema change while the stream was in
// binary, say), or of another type on the target. Nothing of the source
// transaction that holds it is applied; the stream must start again in
// text form from the last applied position.
type BinaryValueError struct {
	Table   string // quoted schema.name
	Column  string // quoted
	TypeOID uint32 // the source's type
	Target  uint32 // the target's type
	At      change.LSN
}

func (e *BinaryValueError) Error() string {
	return fmt.Sprintf("target: column %s of %s (source type OID %d, target type OID %d) came in binary form at source %s, which only built-in types the target shares may: the link streams in text from the next session",
		e.Column, e.Table, e.TypeOID, e.Target, e.At)
}

// passesBinary says whether a binary value of source column c may go to
// target column tc as it is.
func passesBinary(c change.Column, tc *targetCol) bool {
	return c.TypeOID < firstNormalOID && c.TypeOID == tc.typeOID
}

// checkBinary returns a BinaryValueError for the first binary value of c
// that t cannot take as it is.
func checkBinary(t *table, c *change.Change) error {
	if t.binaryOK {
		return nil
	}
	for _, tup := range []change.Tuple{c.New, c.Old} {
		for i, v := range tup {
			if v.Kind == change.ValueBinary && i < len(t.cols) && !t.cols[i].binaryOK {
				return &BinaryValueError{Table: t.quoted, Column: t.cols[i].quoted,
					TypeOID: t.rel.Columns[i].TypeOID, Target: t.cols[i].typeOID, At: c.CommitLSN}
			}
		}
	}
	return nil
}

// sameWire says whether the values of tup come in the form (text or
// binary) the fold took its table's columns in so far, recording the form
// of columns not seen yet. A set-based statement passes a column's values
// as one array, all in one form, and a binary value of a column that goes
// in a text[] (arrays, composites: see readTargetColumns) cannot be cast
// to its type there: such a change is applied row by row.
func sameWire(t *table, tup change.Tuple) bool {
	for i, v := range tup {
		if v.Kind != change.ValueText && v.Kind != change.ValueBinary {
			continue
		}
		c := &t.cols[i]
		switch {
		case c.wire == v.Kind:
		case c.wire != 0:
			return false
		case v.Kind == change.ValueBinary && c.cast != "":
			return false
		default:
			c.wire = v.Kind
		}
	}
	return true
}

// appendPassedArray appends the binary form of a one-dimensional array of
// vals, values of type elem in binary form (or NULL), to buf: each element
// is the value's bytes after their length.
func appendPassedArray(buf []byte, vals []change.Value, elem uint32) []byte {
	hasNull := uint32(0)
	size := 20
	for _, v := range vals {
		if v.Kind == change.ValueNull {
			hasNull = 1
		}
		size += 4 + len(v.Data)
	}
	if buf == nil {
		buf = make([]byte, 0, size)
	}
	buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
	buf = binary.BigEndian.AppendUint32(buf, hasNull)
	buf = binary.BigEndian.AppendUint32(buf, elem)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(vals)))
	buf = binary.BigEndian.AppendUint32(buf, 1) // lower bound
	for _, v := range vals {
		if v.Kind == change.ValueNull {
			buf = binary.BigEndian.AppendUint32(buf, math.MaxUint32) // length -1
			continue
		}
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(v.Data)))
		buf = append(buf, v.Data...)
	}
	return buf
}
