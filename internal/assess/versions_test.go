package assess

import (
	"strings"
	"testing"
)

// TestVersionPairFindings: PostgreSQL 13 to 18 are supported on both sides,
// anything else is refused with the range; an older target blocks a copied
// schema and only warns about a loaded one.
func TestVersionPairFindings(t *testing.T) {
	for _, c := range []struct {
		src, tgt int
		mode     string
		sev      map[string]Severity // check -> severity; absent: no finding
	}{
		{130023, 180004, SchemaCopy, map[string]Severity{"version": Info}},
		{180004, 180004, SchemaExisting, map[string]Severity{"version": Info}},
		{170000, 190000, SchemaCopy, map[string]Severity{"version": Blocker}},
		{130000, 120000, SchemaCopy, map[string]Severity{"version": Blocker, "version_order": Blocker}},
		{170000, 160000, SchemaCopy, map[string]Severity{"version": Info, "version_order": Blocker}},
		{170000, 160000, SchemaExisting, map[string]Severity{"version": Info, "version_order": Warning}},
	} {
		fs := versionPairFindings(c.src, c.tgt, "x", c.mode)
		for _, check := range []string{"version", "version_order"} {
			got := byCheck(fs, check)
			want, ok := c.sev[check]
			if !ok && len(got) > 0 || ok && (len(got) != 1 || got[0].Severity != want) {
				t.Errorf("%d -> %d (%s): check %s: %+v, want %v", c.src, c.tgt, c.mode, check, got, want)
			}
		}
		if v := byCheck(fs, "version"); len(v) == 1 && v[0].Severity == Blocker && !strings.Contains(v[0].What+v[0].Remedy, "13 to 18") {
			t.Errorf("the refusal does not say which versions work: %+v", v[0])
		}
	}
}
