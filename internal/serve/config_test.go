package serve

import (
	"strings"
	"testing"
)

func testEnv(name string) (string, bool) {
	if name == "SHOP_PASSWORD" {
		return "s3cret", true
	}
	return "", false
}

func TestParseConfig(t *testing.T) {
	data := `links:
  - name: shop
    source: postgres://pglink:${SHOP_PASSWORD}@old:5432/shop
    target: postgres://postgres@new:5432/shop
    jobs: 4
    tables: [public.orders, "public.items*"]
    exclude-tables: audit.*
    apply-sessions: 1
    wal-warn: 2GB
  - name: crm
    source: postgres://pglink@old:5432/crm
    target: postgres://postgres@new:5432/crm
`
	specs, err := Parse([]byte(data), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 2 {
		t.Fatalf("got %d links, want 2", len(specs))
	}
	c := specs[0].Config
	if c.Name != "shop" || c.Source != "postgres://pglink:s3cret@old:5432/shop" || c.Jobs != 4 || c.ApplySessions != 1 ||
		strings.Join(c.Tables, "|") != "public.orders|public.items*" || strings.Join(c.ExcludeTables, "|") != "audit.*" ||
		c.WALWarnBytes != 2<<30 || c.Schema != "copy" || specs[0].Line != 2 {
		t.Fatalf("first link parsed as %+v (line %d)", c, specs[0].Line)
	}
	if d := specs[1].Config; d.ApplySessions != 2 || d.Jobs != 0 || d.Tables != nil || specs[1].Line != 10 {
		t.Fatalf("second link's defaults: %+v (line %d)", d, specs[1].Line)
	}
}

func TestParseConfigErrors(t *testing.T) {
	const ok = "    source: postgres://a@h/db\n    target: postgres://b@h/db\n"
	for _, tc := range []struct {
		name, data string
		line       int
		want       string
	}{
		{"unknown key", "links:\n  - name: a\n" + ok + "    jbos: 4\n", 5, `unknown key "jbos"`},
		{"unknown top key", "links: []\nlinx: []\n", 2, `unknown key "linx"`},
		{"duplicate name", "links:\n  - name: a\n" + ok + "  - name: a\n" + ok, 5, `"a" is used twice (first at line 2)`},
		{"missing secret", "links:\n  - name: a\n    source: postgres://a:${NOPE}@h/db\n    target: postgres://b@h/db\n", 3, "NOPE, which is not set"},
		{"missing source", "links:\n  - name: a\n    target: postgres://b@h/db\n", 2, "link a has no source"},
		{"missing target", "links:\n  - name: a\n    source: postgres://b@h/db\n", 2, "link a has no target"},
		{"missing name", "links:\n  - source: postgres://a@h/db\n    target: postgres://b@h/db\n", 2, "without a name"},
		{"bad name", "links:\n  - name: Shop-1\n" + ok, 2, "Shop-1"},
		{"bad number", "links:\n  - name: a\n" + ok + "    jobs: many\n", 5, "jobs"},
		{"bad apply-sessions", "links:\n  - name: a\n" + ok + "    apply-sessions: 3\n", 2, "apply-sessions 3"},
		{"list for one value", "links:\n  - name: a\n" + ok + "    jobs: [1, 2]\n", 5, "not a list"},
		{"bad size", "links:\n  - name: a\n" + ok + "    wal-warn: lots\n", 5, "wal-warn"},
		{"not a list", "links:\n  name: a\n", 2, "must be a list"},
		{"bad yaml", "links:\n  - name: a\n\tsource: x\n", 2, "not valid YAML"},
		{"empty", "", 1, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data), testEnv)
			if err == nil {
				t.Fatal("no error")
			}
			ce, isCE := err.(*ConfigError)
			if !isCE || ce.Line != tc.line || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q (line %v), want line %d and %q", err, ce, tc.line, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error shows a secret: %v", err)
			}
		})
	}
}
