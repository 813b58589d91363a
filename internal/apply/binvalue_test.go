package apply

import (
	"bytes"
	"testing"

	"github.com/pglink/pglink/internal/change"
)

// TestAppendPassedArray checks the binary array around values passed as
// they came: header, element OID, NULL as length -1, each value's bytes
// after their length.
func TestAppendPassedArray(t *testing.T) {
	vals := []change.Value{{Kind: change.ValueBinary, Data: []byte{0, 0, 0, 7}}, {Kind: change.ValueNull},
		{Kind: change.ValueBinary, Data: []byte{}}}
	got := appendPassedArray(nil, vals, 23)
	want := []byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 23, 0, 0, 0, 3, 0, 0, 0, 1,
		0, 0, 0, 4, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Errorf("appendPassedArray = %v, want %v", got, want)
	}
}

// TestSameWire checks that a set-based statement only gets a column's
// values in one form, and no binary value of a column it passes in a
// text[] (an array or composite column).
func TestSameWire(t *testing.T) {
	tbl := &table{cols: []targetCol{{typeOID: 23}, {typeOID: 1007, cast: "integer[]"}}}
	bin := change.Value{Kind: change.ValueBinary, Data: []byte{0, 0, 0, 1}}
	text := change.Value{Kind: change.ValueText, Data: []byte("1")}
	null := change.Value{Kind: change.ValueNull}
	if !sameWire(tbl, change.Tuple{bin, null}) || !sameWire(tbl, change.Tuple{bin, text}) {
		t.Fatalf("first values refused")
	}
	if sameWire(tbl, change.Tuple{text, null}) {
		t.Errorf("a text value of a column taken in binary form was taken")
	}
	if sameWire(tbl, change.Tuple{bin, bin}) {
		t.Errorf("a binary value of a column passed as text[] was taken")
	}
	if !sameWire(tbl, nil) {
		t.Errorf("no tuple refused")
	}
}

// TestCheckBinary: a binary value of a column whose types differ stops
// the apply; text values and binary values of shared built-in types pass.
func TestCheckBinary(t *testing.T) {
	rel := &change.Relation{Schema: "s", Name: "t", Columns: []change.Column{{Name: "id", TypeOID: 23}, {Name: "m", TypeOID: 16400}}}
	tbl := &table{rel: rel, quoted: rel.QualifiedName(), cols: []targetCol{{quoted: "id", typeOID: 23}, {quoted: "m", typeOID: 16500}}}
	for i, c := range rel.Columns {
		tbl.cols[i].binaryOK = passesBinary(c, &tbl.cols[i])
	}
	bin := change.Value{Kind: change.ValueBinary, Data: []byte{1}}
	text := change.Value{Kind: change.ValueText, Data: []byte("ok")}
	if err := checkBinary(tbl, &change.Change{New: change.Tuple{bin, text}}); err != nil {
		t.Errorf("refused a binary int4 and a text enum: %v", err)
	}
	err := checkBinary(tbl, &change.Change{New: change.Tuple{bin, bin}})
	if be, ok := err.(*BinaryValueError); !ok || be.TypeOID != 16400 || be.Target != 16500 {
		t.Errorf("binary enum value: err = %v, want a BinaryValueError", err)
	}
	tbl.binaryOK = true
	if err := checkBinary(tbl, &change.Change{New: change.Tuple{bin, bin}}); err != nil {
		t.Errorf("a table whose columns all pass binary values checked them: %v", err)
	}
}
