package seed

import (
	"regexp"
	"strings"
)

// statement is one SQL statement of a pg_dump script, with the archive
// entry (TOC) it belongs to, as named by pg_dump's comment header
// "-- Name: x; Type: INDEX; Schema: s; Owner: o".
type statement struct {
	SQL        string // without the final semicolon
	Type, Name string
}

func (s statement) label() string {
	if s.Type == "" {
		return "statement"
	}
	return s.Type + " " + s.Name
}

var tocHeaderRE = regexp.MustCompile(`^-- (?:Name|Data for Name): (.*); Type: ([^;]*); Schema: `)

// splitScript cuts a pg_dump plain-text script into statements. It follows
// PostgreSQL's lexical rules for what may hide a semicolon: quoted strings
// ('..', E'..' with backslash escapes), quoted identifiers, dollar-quoted
// bodies, and -- and nested /* */ comments. Lines starting with a backslash
// between statements are psql meta-commands (pg_dump 15.14+ writes
// \restrict and \unrestrict): they are not SQL and are dropped.
func splitScript(script string) []statement {
	var out []statement
	var cur statement
	start := -1 // offset of the current statement's first character
	for i := 0; i < len(script); {
		c := script[i]
		switch {
		case start < 0 && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			i++
		case start < 0 && c == '\\':
			i = lineEnd(script, i)
		case c == '-' && strings.HasPrefix(script[i:], "--"):
			end := lineEnd(script, i)
			if start < 0 {
				if m := tocHeaderRE.FindStringSubmatch(script[i:end]); m != nil {
					cur.Name, cur.Type = m[1], m[2]
				}
			}
			i = end
		case c == '/' && strings.HasPrefix(script[i:], "/*"):
			i = blockCommentEnd(script, i)
		case c == ';':
			if start >= 0 {
				cur.SQL = strings.TrimSpace(script[start:i])
				out = append(out, cur)
			}
			start = -1
			i++
		default:
			if start < 0 {
				start = i
			}
			i = skipToken(script, i)
		}
	}
	if start >= 0 {
		if sql := strings.TrimSpace(script[start:]); sql != "" {
			cur.SQL = sql
			out = append(out, cur)
		}
	}
	return out
}

func lineEnd(s string, i int) int {
	if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(s)
}

func blockCommentEnd(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case strings.HasPrefix(s[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(s[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return i
}

// skipToken returns the offset after the token starting at i: a whole
// quoted string, quoted identifier or dollar-quoted body, a whole word, or
// one other character.
func skipToken(s string, i int) int {
	c := s[i]
	switch {
	case c == '\'':
		escapes := i > 0 && (s[i-1] == 'E' || s[i-1] == 'e') && (i < 2 || !isIdentChar(s[i-2]))
		return quotedEnd(s, i, '\'', escapes)
	case c == '"':
		return quotedEnd(s, i, '"', false)
	case c == '$':
		if tag, ok := dollarTag(s, i); ok {
			if j := strings.Index(s[i+len(tag):], tag); j >= 0 {
				return i + len(tag) + j + len(tag)
			}
			return len(s)
		}
		return i + 1
	case isIdentChar(c):
		for i < len(s) && (isIdentChar(s[i]) || s[i] == '$') {
			i++
		}
		return i
	}
	return i + 1
}

// quotedEnd finds the closing quote; a doubled quote stands for itself.
func quotedEnd(s string, i int, q byte, backslashEscapes bool) int {
	for i++; i < len(s); i++ {
		switch {
		case backslashEscapes && s[i] == '\\':
			i++
		case s[i] == q:
			if i+1 < len(s) && s[i+1] == q {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(s)
}

// dollarTag reads $tag$ at i; a tag is empty or an identifier not starting
// with a digit ($1 is a parameter).
func dollarTag(s string, i int) (string, bool) {
	j := i + 1
	for j < len(s) && s[j] != '$' {
		if !isIdentChar(s[j]) || (j == i+1 && s[j] >= '0' && s[j] <= '9') {
			return "", false
		}
		j++
	}
	if j >= len(s) {
		return "", false
	}
	return s[i : j+1], true
}

func isIdentChar(c byte) bool {
	return c == '_' || c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// SplitStatements cuts SQL text into its statements (without their final
// semicolons), by the same lexical rules as pg_dump scripts.
func SplitStatements(sql string) []string {
	stmts := splitScript(sql)
	out := make([]string, len(stmts))
	for i, s := range stmts {
		out[i] = s.SQL
	}
	return out
}
