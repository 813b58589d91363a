package apply

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

// bigText returns about 32 kB of text that does not compress, so the
// target stores it out of line (TOASTed), as the source did.
func bigText(seed string) string {
	var b strings.Builder
	h := sha256.Sum256([]byte(seed))
	for b.Len() < 32<<10 {
		b.WriteString(hex.EncodeToString(h[:]))
		h = sha256.Sum256(h[:])
	}
	return b.String()
}

// rowsOf renders the rows of a table with the text of a big column as its
// md5, ordered by id.
func rowsOf(cols, table string) string {
	return fmt.Sprintf(`SELECT string_agg(concat_ws('|', %s), ';' ORDER BY id) FROM %s`, cols, table)
}

// md5s returns the md5 of bigText(seed) for each seed.
func md5s(seeds ...string) map[string]string {
	out := map[string]string{}
	for _, seed := range seeds {
		sum := md5.Sum([]byte(bigText(seed)))
		out[seed] = hex.EncodeToString(sum[:])
	}
	return out
}

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
		txn(0x1000, ins(r, "10", "ten", bigText("B10"), "1"), ins(r, "20", "twenty", bigText("B20"), "2"),
			ins(r, "30", "thirty", bigText("B30"), "3")),
		txn(0x2000,
			upd(r, nil, "10", "TEN", unchanged, "1"),                          // key unchanged, TOASTed value kept
			upd(r, tup("20", nil, nil, nil), "21", "twenty", unchanged, "2"),  // key changed, TOASTed value kept
			upd(r, nil, "30", "thirty", bigText("B33"), "33"),                 // non-key identity changed
			upd(r, tup("30", nil, nil, nil), "30", "THIRTY", unchanged, "33"), // old key sent, the same
			del(r, "10", nil, nil, nil),
			ins(r, "40", "forty", nil, "4")),
	)
	m := md5s("B20", "B33")
	e.expect(t, rowsOf("id, name, coalesce(md5(big), 'N'), seq", "t"),
		"21|twenty|"+m["B20"]+"|2;30|THIRTY|"+m["B33"]+"|33;40|forty|N|4")
	e.expect(t, `SELECT pg_relation_size(reltoastrelid) > 0 FROM pg_class WHERE oid = 't'::regclass`, "true")
	if st := a.Stats(); st.Conflicts != 0 {
		t.Errorf("conflicts = %d, want 0", st.Conflicts)
	}
	// The target's sequences are the target's own: they did not move.
	e.expect(t, `SELECT last_value || '/' || is_called FROM t_id_seq`, "1/false")
}

// TestIdentityAlwaysMoveKeepsTargetColumns moves rows of a partitioned
// table whose identity key is GENERATED ALWAYS across partitions, with the
// target's columns in another order than the source's and a column of the
// target's own, which the move keeps.
func TestIdentityAlwaysMoveKeepsTargetColumns(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	e := newEnv(t, c,
		`CREATE TABLE p (note text DEFAULT 'target', big text, id int GENERATED ALWAYS AS IDENTITY, k text,
			total int GENERATED ALWAYS AS (length(k)) STORED, PRIMARY KEY (id)) PARTITION BY RANGE (id)`,
		`CREATE TABLE p_low PARTITION OF p FOR VALUES FROM (MINVALUE) TO (100)`,
		`CREATE TABLE p_high PARTITION OF p FOR VALUES FROM (100) TO (MAXVALUE)`)
	r := rel("public", "p", change.IdentityDefault, "id*", "k", "big")
	e.mustRun(t, Options{},
		txn(0x1000, ins(r, "1", "a", bigText("B1")), ins(r, "2", "bb", bigText("B2"))),
	)
	c.Exec(e.db, `UPDATE p SET note = 'kept ' || id`)
	e.mustRun(t, Options{},
		txn(0x2000,
			upd(r, tup("1", nil, nil), "101", "a", unchanged), // to the other partition
			upd(r, tup("2", nil, nil), "3", "ccc", bigText("B3")),
			upd(r, nil, "3", "dddd", unchanged)),
	)
	m := md5s("B1", "B3")
	e.expect(t, rowsOf("id, k, md5(big), note, total, tableoid::regclass", "p"),
		"3|dddd|"+m["B3"]+"|kept 2|4|p_low;101|a|"+m["B1"]+"|kept 1|1|p_high")
}

// TestIdentityAlwaysFull applies to a table without a key whose rows the
// whole old row identifies (REPLICA IDENTITY FULL), with a GENERATED ALWAYS
// identity column: updates that keep it set the other columns, one that
// changes it moves the row.
func TestIdentityAlwaysFull(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	e := newEnv(t, c, `CREATE TABLE f (id int GENERATED ALWAYS AS IDENTITY, v text)`)
	r := rel("public", "f", change.IdentityFull, "id", "v")
	a := e.mustRun(t, Options{},
		txn(0x1000, ins(r, "5", "a"), ins(r, "6", "b"), ins(r, "6", "b")),
		txn(0x2000,
			upd(r, tup("5", "a"), "5", "A"),
			upd(r, tup("6", "b"), "7", "b"), // one of the two duplicates
			upd(r, tup("6", "b"), "6", "B"),
			del(r, "5", "A")),
	)
	e.expect(t, rowsOf("id, v", "f"), "6|B;7|b")
	if st := a.Stats(); st.Conflicts != 0 {
		t.Errorf("conflicts = %d, want 0", st.Conflicts)
	}
}

// TestBuildStmtIdentityAlways pins the statements of a table with a
// GENERATED ALWAYS identity key: the insert overrides, an update that keeps
// the key leaves it out of SET, one that changes it moves the row.
func TestBuildStmtIdentityAlways(t *testing.T) {
	r := rel("public", "t", change.IdentityDefault, "id*", "v")
	tbl := &table{rel: r, quoted: `"public"."t"`, identityAlways: true, extra: []string{`"own"`},
		cols: []targetCol{{quoted: `"id"`, typeOID: 20, equality: true, identityAlways: true}, {quoted: `"v"`, typeOID: 25, equality: true}}}
	full := rel("public", "f", change.IdentityFull, "id", "v")
	ftbl := &table{rel: full, quoted: `"public"."f"`, identityAlways: true,
		cols: []targetCol{{quoted: `"id"`, typeOID: 20, equality: true, identityAlways: true}, {quoted: `"v"`, typeOID: 25, equality: true}}}
	tests := []struct {
		t   *table
		c   *change.Change
		sql string
	}{
		{tbl, ins(r, "1", "x"), `INSERT INTO "public"."t" ("id", "v") OVERRIDING SYSTEM VALUE VALUES ($1, $2)`},
		{tbl, upd(r, nil, "1", "x"), `UPDATE ONLY "public"."t" SET "v" = $1 WHERE "id" = $2`},
		{tbl, upd(r, tup("1", nil), "1", "x"), `UPDATE ONLY "public"."t" SET "v" = $1 WHERE "id" = $2`},
		{tbl, upd(r, tup("1", nil), "2", "x"), `WITH d AS (DELETE FROM ONLY "public"."t" WHERE "id" = $3 RETURNING *) ` +
			`INSERT INTO "public"."t" ("id", "v", "own") OVERRIDING SYSTEM VALUE SELECT $1, $2, d."own" FROM d`},
		{tbl, upd(r, tup("1", nil), "2", unchanged), `WITH d AS (DELETE FROM ONLY "public"."t" WHERE "id" = $2 RETURNING *) ` +
			`INSERT INTO "public"."t" ("id", "v", "own") OVERRIDING SYSTEM VALUE SELECT $1, d."v", d."own" FROM d`},
		{ftbl, upd(full, tup("1", "a"), "1", "b"), `UPDATE ONLY "public"."f" SET "v" = $1 WHERE ctid = (SELECT ctid FROM ONLY "public"."f" ` +
			`WHERE "id" IS NOT DISTINCT FROM $2 AND "v" IS NOT DISTINCT FROM $3 LIMIT 1)`},
	}
	for _, tc := range tests {
		var s shape
		if _, err := shapeOf(&s, tc.t, tc.c); err != nil {
			t.Fatal(err)
		}
		if st := buildStmt(tc.t, &s); st.sql != tc.sql {
			t.Errorf("got  %s\nwant %s", st.sql, tc.sql)
		}
	}
}
