package apply

import (
	"testing"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestIdentityAlways applies rows to a table whose key is GENERATED ALWAYS
// AS IDENTITY and which has another identity column that is not the key:
// inserts carry the source's values, updates keep or change them, unchanged
// TOASTed values survive a key change.
func TestIdentityAlways(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	e := newEnv(t, c, `CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text, big text,
		seq int GENERATED ALWAYS AS IDENTITY)`)
	r := rel("public", "t", change.IdentityDefault, "id*", "name", "big", "seq")
	a := e.mustRun(t, Options{},
		txn(0x1000, ins(r, "10", "ten", "B10", "1"), ins(r, "20", "twenty", "B20", "2"), ins(r, "30", "thirty", "B30", "3")),
		txn(0x2000,
			upd(r, nil, "10", "TEN", unchanged, "1"),                         // key unchanged, TOASTed value kept
			upd(r, tup("20", nil, nil, nil), "21", "twenty", unchanged, "2"), // key changed, TOASTed value kept
			upd(r, nil, "30", "thirty", "B30", "33"),                         // non-key identity changed
			del(r, "10", nil, nil, nil),
			ins(r, "40", "forty", nil, "4")),
	)
	e.expect(t, `SELECT string_agg(format('%s|%s|%s|%s', id, name, coalesce(big, 'N'), seq), ';' ORDER BY id) FROM t`,
		"21|twenty|B20|2;30|thirty|B30|33;40|forty|N|4")
	if st := a.Stats(); st.Conflicts != 0 {
		t.Errorf("conflicts = %d, want 0", st.Conflicts)
	}
}
