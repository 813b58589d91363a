package apply

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

// typeCase is one column: its type, the text values of three rows as
// pgoutput sends them (nil: NULL), and what the target must show for each
// as col::text (which shows inet's mask and trims char(n)).
type typeCase struct {
	col, typ string
	in       [3]any
	want     [3]string
}

var typeCases = []typeCase{
	{"n", "numeric", [3]any{"NaN", "Infinity", "-123456789012345678901234567890.000000001"}, [3]string{"NaN", "Infinity", "-123456789012345678901234567890.000000001"}},
	{"f8", "float8", [3]any{"NaN", "-Infinity", "-0"}, [3]string{"NaN", "-Infinity", "-0"}},
	{"f4", "real", [3]any{"Infinity", "1.1", "3.4028235e+38"}, [3]string{"Infinity", "1.1", "3.4028235e+38"}},
	{"b", "bytea", [3]any{`\x00ff10`, nil, `\x`}, [3]string{`\x00ff10`, "NULL", `\x`}},
	{"j", "json", [3]any{`{"a": [1, 2.50]}`, nil, "null"}, [3]string{`{"a": [1, 2.50]}`, "NULL", "null"}},
	{"jb", "jsonb", [3]any{`{"b": 2, "a": 1}`, nil, `[]`}, [3]string{`{"a": 1, "b": 2}`, "NULL", "[]"}},
	{"ia", "int[]", [3]any{"{1,2,NULL}", nil, "{}"}, [3]string{"{1,2,NULL}", "NULL", "{}"}},
	{"ta", "text[]", [3]any{`{"a b","c,d",NULL,""}`, nil, `{{x,y},{z,"\""}}`}, [3]string{`{"a b","c,d",NULL,""}`, "NULL", `{{x,y},{z,"\""}}`}},
	{"r", "int4range", [3]any{"[1,5)", nil, "empty"}, [3]string{"[1,5)", "NULL", "empty"}},
	{"tr", "tstzrange", [3]any{`["2024-01-01 00:00:00+00","2024-01-02 00:00:00+00")`, nil, "(,)"},
		[3]string{`["2024-01-01 00:00:00+00","2024-01-02 00:00:00+00")`, "NULL", "(,)"}},
	{"m", "mood", [3]any{"happy", nil, "sad"}, [3]string{"happy", "NULL", "sad"}},
	{"d", "posint", [3]any{"5", nil, "2147483647"}, [3]string{"5", "NULL", "2147483647"}},
	{"c", "pair", [3]any{`(1,"a b")`, nil, "(,)"}, [3]string{`(1,"a b")`, "NULL", "(,)"}},
	{"ts", "timestamptz", [3]any{"2024-02-29 12:34:56.789012+00", "infinity", "1999-12-31 23:59:59+05:30"},
		[3]string{"2024-02-29 12:34:56.789012+00", "infinity", "1999-12-31 18:29:59+00"}},
	{"tsn", "timestamp", [3]any{"infinity", "-infinity", "0001-01-01 00:00:00 BC"}, [3]string{"infinity", "-infinity", "0001-01-01 00:00:00 BC"}},
	{"iv", "interval", [3]any{"1 year 2 mons 3 days 04:05:06.5", "-00:00:01", "00:00:00"}, [3]string{"1 year 2 mons 3 days 04:05:06.5", "-00:00:01", "00:00:00"}},
	{"dt", "date", [3]any{"infinity", "-infinity", "2024-02-29"}, [3]string{"infinity", "-infinity", "2024-02-29"}},
	{"u", "uuid", [3]any{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", nil, nil}, [3]string{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "NULL", "NULL"}},
	{"ip", "inet", [3]any{"192.168.0.1/24", "::1", nil}, [3]string{"192.168.0.1/24", "::1/128", "NULL"}},
	{"bits", "varbit", [3]any{"10101", "", nil}, [3]string{"10101", "", "NULL"}},
	{"bo", "boolean", [3]any{"t", "f", nil}, [3]string{"true", "false", "NULL"}},
	{"ch", "char(3)", [3]any{"ab ", nil, ""}, [3]string{"ab", "NULL", ""}},
	{"pt", "point", [3]any{"(1.5,-2)", nil, "(0,0)"}, [3]string{"(1.5,-2)", "NULL", "(0,0)"}},
	{"tx", "text", [3]any{"line\nbreak \\ 'quote' ü", "", nil}, [3]string{"line\nbreak \\ 'quote' ü", "", "NULL"}},
}

func typesSetup(db string) []string {
	var cols []string
	for _, tc := range typeCases {
		cols = append(cols, tc.col+" "+tc.typ)
	}
	list := strings.Join(cols, ", ")
	return []string{
		fmt.Sprintf(`ALTER DATABASE %s SET timezone = 'UTC'`, db),
		`CREATE TYPE mood AS ENUM ('sad', 'happy')`,
		`CREATE DOMAIN posint AS int CHECK (VALUE > 0)`,
		`CREATE TYPE pair AS (x int, label text)`,
		`CREATE TABLE ty (id int PRIMARY KEY, ` + list + `)`,
		`CREATE TABLE tyf (id int, ` + list + `)`,
		`ALTER TABLE tyf REPLICA IDENTITY FULL`,
	}
}

// typeRow returns the values of row i (0-based), id first.
func typeRow(id string, i int) []any {
	vals := []any{id}
	for _, tc := range typeCases {
		vals = append(vals, tc.in[i])
	}
	return vals
}

func testTypes(t *testing.T, c *pgtest.Cluster) {
	db := "types_db"
	c.CreateDB(db)
	c.Exec(db, typesSetup(db)...)
	e := &env{c: c, db: db}
	e.conn = e.session(t)
	cols := []string{"id*"}
	for _, tc := range typeCases {
		cols = append(cols, tc.col)
	}
	ty := rel("public", "ty", change.IdentityDefault, cols...)
	tyf := rel("public", "tyf", change.IdentityFull, cols...)
	var rows, fullRows []*change.Change
	for i := range 3 {
		rows = append(rows, ins(ty, typeRow(fmt.Sprint(i+1), i)...))
		fullRows = append(fullRows, ins(tyf, typeRow(fmt.Sprint(i+1), i)...))
	}
	// The whole-row match of every type: each row is found by its old
	// values (with = or, for json, point and the composite, as text).
	var fullChanges []*change.Change
	for i := range 3 {
		old := tup(typeRow(fmt.Sprint(i+1), i)...)
		fullChanges = append(fullChanges, upd(tyf, old, typeRow(fmt.Sprint(i+11), i)...))
	}
	a := e.mustRun(t, Options{}, txn(0x1000, append(rows, fullRows...)...), txn(0x2000, fullChanges...))
	if got := a.Stats().Conflicts; got != 0 {
		t.Errorf("conflicts = %d, want 0: a row was not found by its old values", got)
	}
	if got := a.Stats().Fallbacks; got != 0 {
		t.Errorf("set-based inserts fell back %d times, want 0: a type cannot travel in an array", got)
	}
	for _, tc := range typeCases {
		want := strings.Join(tc.want[:], "|")
		for _, tbl := range []string{"ty", "tyf"} {
			e.expect(t, fmt.Sprintf(`SELECT string_agg(coalesce(%s::text, 'NULL'), '|' ORDER BY id) FROM %s`, tc.col, tbl), want)
		}
	}
	e.expect(t, `SELECT string_agg(id::text, ',' ORDER BY id) FROM tyf`, "11,12,13")
}
