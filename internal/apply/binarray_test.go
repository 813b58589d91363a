package apply

import (
	"context"
	"fmt"
	"testing"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

// binaryCase is one type: texts the encoder must read, and texts it must
// leave to the type's input function (the array then goes in text form).
type binaryCase struct {
	typ    string
	oid    uint32
	read   []string
	refuse []string
}

var binaryCases = []binaryCase{
	{"bool", 16, []string{"t", "f"}, []string{"true", "1", " t", ""}},
	{"int2", 21, []string{"0", "-32768", "32767", "007"}, []string{"32768", "+1", " 1", "1.0", "0x1F", "1_000", ""}},
	{"int4", 23, []string{"-2147483648", "2147483647", "42"}, []string{"2147483648", "3000000000", "1e3"}},
	{"int8", 20, []string{"-9223372036854775808", "9223372036854775807", "0"}, []string{"9223372036854775808", "12345678901234567890"}},
	{"float4", 700, []string{"1.1", "3.4028235e+38", "-0", "1e-45", "NaN", "Infinity", "-Infinity", "0.1", "123456.79"},
		[]string{"1e39", "1e-50", "0x1p-2", "inf", "nan", " 1", "1_0"}},
	{"float8", 701, []string{"0.1", "1.7976931348623157e+308", "5e-324", "-0", "NaN", "-Infinity", "2.2250738585072014e-308", ".5", "1E10"},
		[]string{"1e309", "1e-400", "Inf", "0x10"}},
	{"text", 25, []string{"", "a b", `"quoted" \ {braces}, commas`, "ü\nnew line", "NULL"}, nil},
	{"varchar", 1043, []string{"", "xyz", "NULL"}, nil},
	{"bpchar", 1042, []string{"ab ", "", "  "}, nil},
	{"uuid", 2950, []string{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000000", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"},
		[]string{"a0eebc999c0b4ef8bb6d6bb9bd380a11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}},
	{"date", 1082, []string{"2000-01-01", "1999-12-31", "2024-02-29", "0001-01-01", "9999-12-31", "1970-01-01", "1900-03-01"},
		[]string{"infinity", "-infinity", "2023-02-29", "0001-01-01 BC", "10000-01-01", "2024-1-1", "2024-13-01"}},
	{"timestamp", 1114, []string{"2000-01-01 00:00:00", "2024-02-29 12:34:56.789012", "1969-07-20 20:17:40.5", "0001-01-01 00:00:00",
		"9999-12-31 23:59:59.999999", "2026-11-24 03:25:28.000001"},
		[]string{"infinity", "2024-02-29 12:34:56+00", "2024-02-29T12:34:56", "2024-02-29 24:00:00", "2024-02-29 12:34:60",
			"2024-02-29 12:34:56.1234567", "2024-02-29 12:34:56.", "0001-01-01 00:00:00 BC", "Thu Feb 29 12:34:56 2024"}},
	{"timestamptz", 1184, []string{"2000-01-01 00:00:00+00", "1999-12-31 23:59:59+05:30", "2024-02-29 12:34:56.789012-03",
		"1883-11-18 12:00:00-04:56:02", "2024-06-01 00:00:00.5+14"},
		[]string{"-infinity", "2024-02-29 12:34:56", "2024-02-29 12:34:56+5", "2024-02-29 12:34:56+05:3", "2024-02-29 12:34:56 UTC",
			"2024-02-29 12:34:56+05:60"}},
}

// testBinaryArrays: for every type whose arrays pglink sends in binary
// form, the target reads the binary array as it reads the text array of
// the same values, and texts in any other form are refused.
func testBinaryArrays(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c)
	ctx := context.Background()
	for _, bc := range binaryCases {
		enc := binaryElems[bc.oid]
		if enc == nil {
			t.Errorf("%s: no encoder", bc.typ)
			continue
		}
		vals := []change.Value{{Kind: change.ValueNull}}
		for _, s := range bc.read {
			vals = append(vals, change.Value{Kind: change.ValueText, Data: []byte(s)})
		}
		bin, ok := appendBinaryArray(nil, vals, bc.oid, enc)
		if !ok {
			t.Errorf("%s: refused one of %q", bc.typ, bc.read)
			continue
		}
		var oid uint32
		if err := e.conn.QueryRow(ctx, fmt.Sprintf("SELECT '%s[]'::regtype::oid", bc.typ)).Scan(&oid); err != nil {
			t.Fatal(err)
		}
		// The server reads both forms; each element must come out the same.
		sql := fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE b IS NOT DISTINCT FROM x AND b::text IS NOT DISTINCT FROM x::text)
			FROM unnest($1::%[1]s[], $2::%[1]s[]) u(b, x)`, bc.typ)
		res := e.conn.PgConn().ExecParams(ctx, sql, [][]byte{bin, appendArray(nil, vals, ',')}, []uint32{oid, oid}, []int16{1, 0}, nil).Read()
		if res.Err != nil {
			t.Errorf("%s: %v", bc.typ, res.Err)
			continue
		}
		if got, want := fmt.Sprintf("%s/%s", res.Rows[0][1], res.Rows[0][0]), fmt.Sprintf("%d/%d", len(vals), len(vals)); got != want {
			diff := e.conn.PgConn().ExecParams(ctx, fmt.Sprintf(`SELECT string_agg(format('%%s <> %%s', b, x), '; ')
				FROM unnest($1::%[1]s[], $2::%[1]s[]) u(b, x) WHERE b::text IS DISTINCT FROM x::text`, bc.typ),
				[][]byte{bin, appendArray(nil, vals, ',')}, []uint32{oid, oid}, []int16{1, 0}, nil).Read()
			t.Errorf("%s: %s elements read the same from binary and text: %s (%v)", bc.typ, got, diff.Rows, diff.Err)
		}
		for _, s := range bc.refuse {
			if b, ok := enc(nil, []byte(s)); ok {
				t.Errorf("%s: read %q as %x; it should be left to the input function", bc.typ, s, b)
			}
		}
	}
}
