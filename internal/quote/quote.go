// Package quote writes names and values into SQL text, and statements
// into messages.
package quote

import "strings"

// Ident quotes a SQL identifier, always.
func Ident(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return string(append(b, '"'))
}

// Literal quotes s as a SQL string literal.
func Literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// FirstLine shortens a statement (or a detail) for a message: its first
// line, marked " ..." when more follow, and at most max bytes of it
// (no limit when max is 0).
func FirstLine(s string, max int) string {
	line, rest, more := strings.Cut(strings.TrimSpace(s), "\n")
	if max > 0 && len(line) > max {
		line = line[:max] + "..."
	}
	if more && strings.TrimSpace(rest) != "" {
		line += " ..."
	}
	return line
}

// Name names an object for people and for SQL alike: each part quoted
// as PostgreSQL's quote_ident quotes it (only when it needs quotes), joined
// with dots, so public.orders stays as it is and "Mixed Case"."my table"
// cannot be misread.
func Name(parts ...string) string {
	quoted := make([]string, len(parts))
	for i, p := range parts {
		quoted[i] = IdentIfNeeded(p)
	}
	return strings.Join(quoted, ".")
}

// IdentIfNeeded quotes an identifier the way quote_ident does: not at
// all when it is a lowercase ASCII letter or underscore followed by those
// or digits and is no keyword that an identifier cannot be.
func IdentIfNeeded(s string) string {
	safe := s != "" && (s[0] == '_' || s[0] >= 'a' && s[0] <= 'z') && !keywords[s]
	for i := 0; safe && i < len(s); i++ {
		c := s[i]
		safe = c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
	}
	if safe {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// keywords are PostgreSQL's keywords other than the unreserved ones, which
// quote_ident quotes (pg_get_keywords() WHERE catcode <> 'U' on PostgreSQL
// 15, and those that 16 and 17 added). Quoting one that a server does not
// reserve is harmless: it still names the same object.
var keywords = map[string]bool{
	"all": true, "analyse": true, "analyze": true, "and": true, "any": true, "array": true, "as": true,
	"asc": true, "asymmetric": true, "authorization": true, "between": true, "bigint": true, "binary": true,
	"bit": true, "boolean": true, "both": true, "case": true, "cast": true, "char": true, "character": true,
	"check": true, "coalesce": true, "collate": true, "collation": true, "column": true, "concurrently": true,
	"constraint": true, "create": true, "cross": true, "current_catalog": true, "current_date": true,
	"current_role": true, "current_schema": true, "current_time": true, "current_timestamp": true,
	"current_user": true, "dec": true, "decimal": true, "default": true, "deferrable": true, "desc": true,
	"distinct": true, "do": true, "else": true, "end": true, "except": true, "exists": true, "extract": true,
	"false": true, "fetch": true, "float": true, "for": true, "foreign": true, "freeze": true, "from": true,
	"full": true, "grant": true, "greatest": true, "group": true, "grouping": true, "having": true,
	"ilike": true, "in": true, "initially": true, "inner": true, "inout": true, "int": true, "integer": true,
	"intersect": true, "interval": true, "into": true, "is": true, "isnull": true, "join": true, "json": true,
	"json_array": true, "json_arrayagg": true, "json_exists": true, "json_object": true, "json_objectagg": true,
	"json_query": true, "json_scalar": true, "json_serialize": true, "json_table": true, "json_value": true,
	"lateral": true, "leading": true, "least": true, "left": true, "like": true, "limit": true,
	"localtime": true, "localtimestamp": true, "merge_action": true, "national": true, "natural": true,
	"nchar": true, "none": true, "normalize": true, "not": true, "notnull": true, "null": true, "nullif": true,
	"numeric": true, "offset": true, "on": true, "only": true, "or": true, "order": true, "out": true,
	"outer": true, "overlaps": true, "overlay": true, "placing": true, "position": true, "precision": true,
	"primary": true, "real": true, "references": true, "returning": true, "right": true, "row": true,
	"select": true, "session_user": true, "setof": true, "similar": true, "smallint": true, "some": true,
	"substring": true, "symmetric": true, "system_user": true, "table": true, "tablesample": true, "then": true,
	"time": true, "timestamp": true, "to": true, "trailing": true, "treat": true, "trim": true, "true": true,
	"union": true, "unique": true, "user": true, "using": true, "values": true, "varchar": true,
	"variadic": true, "verbose": true, "when": true, "where": true, "window": true, "with": true,
	"xmlattributes": true, "xmlconcat": true, "xmlelement": true, "xmlexists": true, "xmlforest": true,
	"xmlnamespaces": true, "xmlparse": true, "xmlpi": true, "xmlroot": true, "xmlserialize": true,
	"xmltable": true,
}
