package catalog

import "strings"

// Filter selects tables by name. A pattern is "schema.table" or "table" (any
// schema); '*' matches any run of characters and every other character
// matches itself, case-sensitively, as PostgreSQL stores names (a table
// created as Users without quotes is named users). An empty Include selects
// every table; Exclude wins over Include.
type Filter struct {
	Include, Exclude []string
}

// Match tells whether the filter selects the table schema.name.
func (f Filter) Match(schema, name string) bool {
	if len(f.Include) > 0 && !anyMatch(f.Include, schema, name) {
		return false
	}
	return !anyMatch(f.Exclude, schema, name)
}

// Unmatched returns the Include patterns that select none of tables: most
// likely typing errors the user wants to hear about.
func (f Filter) Unmatched(tables []Table) []string {
	var out []string
	for _, p := range f.Include {
		found := false
		for _, t := range tables {
			if patternMatch(p, t.Schema, t.Name) {
				found = true
				break
			}
		}
		if !found {
			out = append(out, p)
		}
	}
	return out
}

func anyMatch(patterns []string, schema, name string) bool {
	for _, p := range patterns {
		if patternMatch(p, schema, name) {
			return true
		}
	}
	return false
}

// patternMatch matches a pattern with a dot against "schema.name" as a
// whole, so names that themselves hold dots still match, and a pattern
// without a dot against the table name alone.
func patternMatch(pattern, schema, name string) bool {
	if strings.Contains(pattern, ".") {
		return glob(pattern, schema+"."+name)
	}
	return glob(pattern, name)
}

// glob matches s against pattern where only '*' is special.
func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}
