package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/pglink/pglink/internal/change"
)

// referenceRow decodes a row message through pglogrepl, as the stream did
// before rowMessage: the reference rowMessage must agree with.
func referenceRow(rc relationCache, data []byte, inStream bool) (*change.Change, error) {
	b := data[1:]
	if inStream {
		if len(b) < 4 {
			return nil, errShort
		}
		b = b[4:]
	}
	// pglogrepl allocates from the lengths in the message: check them first.
	if err := checkRowMessage(b); err != nil {
		return nil, err
	}
	msg, err := parseMessage(data, inStream)
	if err != nil {
		return nil, err
	}
	switch m := msg.(type) {
	case *pglogrepl.InsertMessageV2:
		return referenceTupleChange(rc, change.Insert, m.RelationID, nil, m.Tuple)
	case *pglogrepl.UpdateMessageV2:
		return referenceTupleChange(rc, change.Update, m.RelationID, m.OldTuple, m.NewTuple)
	case *pglogrepl.DeleteMessageV2:
		return referenceTupleChange(rc, change.Delete, m.RelationID, m.OldTuple, nil)
	}
	return nil, fmt.Errorf("not a row message: %T", msg)
}

func referenceTupleChange(rc relationCache, kind change.Kind, relID uint32, old, new *pglogrepl.TupleData) (*change.Change, error) {
	rel, err := rc.get(relID)
	if err != nil {
		return nil, err
	}
	c := &change.Change{Kind: kind, Rel: rel}
	if c.Old, err = referenceTuple(rel, old); err != nil {
		return nil, err
	}
	if c.New, err = referenceTuple(rel, new); err != nil {
		return nil, err
	}
	return c, nil
}

func referenceTuple(rel *change.Relation, td *pglogrepl.TupleData) (change.Tuple, error) {
	if td == nil {
		return nil, nil
	}
	if len(td.Columns) != len(rel.Columns) {
		return nil, fmt.Errorf("%d values for %d columns", len(td.Columns), len(rel.Columns))
	}
	t := make(change.Tuple, len(td.Columns))
	for i, col := range td.Columns {
		switch col.DataType {
		case change.ValueNull, change.ValueUnchanged:
			t[i] = change.Value{Kind: col.DataType}
		case change.ValueText, change.ValueBinary:
			t[i] = change.Value{Kind: col.DataType, Data: col.Data}
		default:
			return nil, fmt.Errorf("unknown value kind %q", col.DataType)
		}
	}
	return t, nil
}

// rowMsg builds a row message: kind, the xid when inStream, the relation
// id, then each tagged tuple; a value is "\x00" for NULL, "\x01" for an
// unchanged TOASTed value, "b:..." for binary, else text.
func rowMsg(kind byte, inStream bool, relID uint32, tuples ...any) []byte {
	b := []byte{kind}
	if inStream {
		b = binary.BigEndian.AppendUint32(b, 700)
	}
	b = binary.BigEndian.AppendUint32(b, relID)
	for i := 0; i < len(tuples); i += 2 {
		b = append(b, tuples[i].(byte))
		vals := tuples[i+1].([]string)
		b = binary.BigEndian.AppendUint16(b, uint16(len(vals)))
		for _, v := range vals {
			switch {
			case v == "\x00":
				b = append(b, 'n')
			case v == "\x01":
				b = append(b, 'u')
			case strings.HasPrefix(v, "b:"):
				b = append(b, 'b')
				b = binary.BigEndian.AppendUint32(b, uint32(len(v)-2))
				b = append(b, v[2:]...)
			default:
				b = append(b, 't')
				b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
				b = append(b, v...)
			}
		}
	}
	return b
}

func twoColumns(id uint32) *change.Relation {
	return &change.Relation{ID: id, Schema: "public", Name: "t2", ReplicaIdentity: change.IdentityDefault,
		Columns: []change.Column{{Name: "id", TypeOID: 20, TypeMod: -1, Key: true}, {Name: "v", TypeOID: 25, TypeMod: -1}}}
}

func sameChange(a, b *change.Change) bool {
	if a.Kind != b.Kind || a.Rel != b.Rel || (a.Old == nil) != (b.Old == nil) || (a.New == nil) != (b.New == nil) {
		return false
	}
	return sameTuple(a.Old, b.Old) && sameTuple(a.New, b.New)
}

func sameTuple(a, b change.Tuple) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		// nil Data would be NULL as a statement parameter: a value's
		// Data must be nil exactly when the reference's is.
		if a[i].Kind != b[i].Kind || !bytes.Equal(a[i].Data, b[i].Data) || (a[i].Data == nil) != (b[i].Data == nil) {
			return false
		}
	}
	return true
}

// FuzzRowMessage decodes arbitrary bytes as a row message both ways, in
// and out of a stream block: whenever rowMessage decodes a message, the
// reference decodes the same change, and whenever the reference does,
// rowMessage does too, except where it is stricter: the tag before an
// update's new row must be 'N', and nothing may follow the last row.
// Never a panic.
// Run with: go test -fuzz FuzzRowMessage ./internal/stream/
func FuzzRowMessage(f *testing.F) {
	for _, inStream := range []bool{false, true} {
		f.Add(inStream, rowMsg('I', inStream, 9, byte('N'), []string{"1", "one"}))
		f.Add(inStream, rowMsg('I', inStream, 9, byte('N'), []string{"2", ""}))
		f.Add(inStream, rowMsg('I', inStream, 9, byte('N'), []string{"3", "\x00"}))
		f.Add(inStream, rowMsg('I', inStream, 9, byte('N'), []string{"b:\x00\x00\x00\x04", "b:"}))
		f.Add(inStream, rowMsg('U', inStream, 9, byte('N'), []string{"1", "\x01"}))
		f.Add(inStream, rowMsg('U', inStream, 9, byte('K'), []string{"1", "\x00"}, byte('N'), []string{"5", "x"}))
		f.Add(inStream, rowMsg('U', inStream, 9, byte('O'), []string{"1", "old"}, byte('N'), []string{"1", "new"}))
		f.Add(inStream, rowMsg('U', inStream, 9, byte('O'), []string{"1", "old"}, byte('X'), []string{"1", "new"}))
		f.Add(inStream, rowMsg('D', inStream, 9, byte('K'), []string{"1", "\x00"}))
		f.Add(inStream, rowMsg('D', inStream, 9, byte('N'), []string{"1", "\x00"}))
		f.Add(inStream, rowMsg('I', inStream, 9, byte('N'), []string{"1"}))
		f.Add(inStream, rowMsg('I', inStream, 8, byte('N'), []string{"1", "x"}))
		f.Add(inStream, rowMsg('I', inStream, 9, byte('N'), []string{"1", "one"})[:12])
	}
	f.Fuzz(func(t *testing.T, inStream bool, data []byte) {
		if len(data) == 0 || !isRowChange(data[0]) {
			return
		}
		rels := relationCache{9: twoColumns(9)}
		got, err := rels.rowMessage(data, inStream)
		want, refErr := referenceRow(rels, data, inStream)
		switch {
		case err == nil && refErr != nil:
			t.Fatalf("decoded %+v where the reference fails: %v", got, refErr)
		case err != nil && refErr == nil && !strings.Contains(err.Error(), "new row tag") && !strings.Contains(err.Error(), "trailing"):
			t.Fatalf("failed where the reference decodes %+v: %v", want, err)
		case err == nil && !sameChange(got, want):
			t.Fatalf("decoded %+v, the reference %+v", got, want)
		}
	})
}

// TestRowMessageOwnsItsBytes checks that a decoded change keeps its values
// when the receive buffer it came from is overwritten.
func TestRowMessageOwnsItsBytes(t *testing.T) {
	rels := relationCache{9: twoColumns(9)}
	data := rowMsg('I', false, 9, byte('N'), []string{"42", "hello"})
	c, err := rels.rowMessage(data, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 0
	}
	if string(c.New[0].Data) != "42" || string(c.New[1].Data) != "hello" {
		t.Fatalf("values changed with the buffer: %q, %q", c.New[0].Data, c.New[1].Data)
	}
}

// checkRowMessage checks, for the reference, relation id, then one or two tuples each after a
// one-byte tag ('K', 'O' or 'N').
func checkRowMessage(b []byte) error {
	if len(b) < 4 {
		return errShort
	}
	b = b[4:]
	for tuples := 0; len(b) > 0; tuples++ {
		if tuples == 2 {
			return errors.New("more than two tuples")
		}
		var err error
		if b, err = checkTuple(b[1:]); err != nil {
			return err
		}
	}
	return nil
}

// checkTuple checks one TupleData and returns what follows it.
func checkTuple(b []byte) ([]byte, error) {
	if len(b) < 2 {
		return nil, errShort
	}
	ncols := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	for i := 0; i < ncols; i++ {
		if len(b) < 1 {
			return nil, errShort
		}
		kind := b[0]
		b = b[1:]
		if kind != 't' && kind != 'b' {
			continue
		}
		if len(b) < 4 {
			return nil, errShort
		}
		n := uint64(binary.BigEndian.Uint32(b))
		if n > uint64(len(b)-4) {
			return nil, fmt.Errorf("value of %d bytes in %d", n, len(b)-4)
		}
		b = b[4+n:]
	}
	return b, nil
}
