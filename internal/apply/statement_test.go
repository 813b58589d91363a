package apply

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestBuildStmt pins the SQL of each statement shape; the database tests
// prove it right, this one shows it and fails on an accidental change.
func TestBuildStmt(t *testing.T) {
	keyed := rel("public", "T", change.IdentityDefault, "id*", "v", "big")
	full := rel("s", "f", change.IdentityFull, "a", "j")
	tables := map[*change.Relation]*table{
		keyed: {rel: keyed, quoted: `"public"."T"`, cols: []targetCol{{quoted: `"id"`, typeOID: 23, equality: true},
			{quoted: `"v"`, typeOID: 25, equality: true}, {quoted: `"big"`, typeOID: 25, equality: true}}},
		full: {rel: full, quoted: `"s"."f"`, partitioned: true, cols: []targetCol{{quoted: `"a"`, typeOID: 23, equality: true},
			{quoted: `"j"`, typeOID: 114}}},
	}
	tests := []struct {
		c    *change.Change
		sql  string
		oids []uint32
	}{
		{ins(keyed, "1", "x", "y"), `INSERT INTO "public"."T" ("id", "v", "big") VALUES ($1, $2, $3)`, []uint32{23, 25, 25}},
		{upd(keyed, nil, "1", "x", unchanged), `UPDATE ONLY "public"."T" SET "id" = $1, "v" = $2 WHERE "id" = $3`, []uint32{23, 25, 23}},
		{del(keyed, "1", nil, nil), `DELETE FROM ONLY "public"."T" WHERE "id" = $1`, []uint32{23}},
		{del(full, "1", "{}"), `DELETE FROM "s"."f" WHERE (tableoid, ctid) = (SELECT tableoid, ctid FROM "s"."f" WHERE "a" IS NOT DISTINCT FROM $1 AND "j"::text IS NOT DISTINCT FROM $2::text LIMIT 1)`, []uint32{23, 114}},
	}
	for _, tc := range tests {
		var s shape
		if _, err := shapeOf(&s, tables[tc.c.Rel], tc.c); err != nil {
			t.Fatal(err)
		}
		st := buildStmt(tables[tc.c.Rel], &s)
		if st.sql != tc.sql {
			t.Errorf("got  %s\nwant %s", st.sql, tc.sql)
		}
		if len(st.paramOIDs) != len(tc.oids) {
			t.Errorf("%s: param OIDs %v, want %v", st.sql, st.paramOIDs, tc.oids)
			continue
		}
		for i := range tc.oids {
			if st.paramOIDs[i] != tc.oids[i] {
				t.Errorf("%s: param OIDs %v, want %v", st.sql, st.paramOIDs, tc.oids)
				break
			}
		}
	}
	if got, want := truncateSQL([]*table{tables[keyed], tables[full]}, true, true),
		`TRUNCATE ONLY "public"."T", "s"."f" RESTART IDENTITY CASCADE`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestBuildBulk pins the SQL of the set-based statements (the database
// tests in fold_test.go prove them right).
func TestBuildBulk(t *testing.T) {
	r := rel("public", "T", change.IdentityDefault, "id*", "v", "tags")
	tb := &table{rel: r, quoted: `"public"."T"`, keyCols: []int{0}, cols: []targetCol{
		{quoted: `"id"`, typeOID: 23, arrayOID: 1007}, {quoted: `"v"`, typeOID: 25, arrayOID: 1009},
		{quoted: `"tags"`, typeOID: 1009, arrayOID: 1009, cast: "text[]"}}}
	tests := []struct {
		op   byte
		cols []int
		sql  string
		oids []uint32
	}{
		{bulkDelete, []int{0}, `WITH pglink_w AS (DELETE FROM ONLY "public"."T" AS pglink_t USING (SELECT unnest($1) AS c1) AS pglink_v WHERE pglink_t."id" = pglink_v.c1 RETURNING 1) SELECT 1 / (count(*) = $2)::int FROM pglink_w`,
			[]uint32{1007, 20}},
		{bulkUpdate, []int{0, 2}, `WITH pglink_w AS (UPDATE ONLY "public"."T" AS pglink_t SET "tags" = pglink_v.c2::text[] FROM (SELECT unnest($1) AS c1, unnest($2) AS c2) AS pglink_v WHERE pglink_t."id" = pglink_v.c1 RETURNING 1) SELECT 1 / (count(*) = $3)::int FROM pglink_w`,
			[]uint32{1007, 1009, 20}},
		{bulkInsert, []int{0, 1, 2}, `WITH pglink_w AS (INSERT INTO "public"."T" ("id", "v", "tags") SELECT pglink_v.c1, pglink_v.c2, pglink_v.c3::text[] FROM (SELECT unnest($1) AS c1, unnest($2) AS c2, unnest($3) AS c3) AS pglink_v RETURNING 1) SELECT 1 / (count(*) = $4)::int FROM pglink_w`,
			[]uint32{1007, 1009, 1009, 20}},
	}
	for _, tc := range tests {
		st := buildBulk(tb, tc.op, tc.cols)
		if st.sql != tc.sql {
			t.Errorf("%c:\n got %s\nwant %s", tc.op, st.sql, tc.sql)
		}
		if fmt.Sprint(st.paramOIDs) != fmt.Sprint(tc.oids) {
			t.Errorf("%c: param types %v, want %v", tc.op, st.paramOIDs, tc.oids)
		}
	}
	vals := []change.Value{{Kind: change.ValueText, Data: []byte(`a"b\c`)}, {Kind: change.ValueNull}, {Kind: change.ValueText}}
	if got, want := string(appendArray(nil, vals, ',')), `{"a\"b\\c",NULL,""}`; got != want {
		t.Errorf("array %s, want %s", got, want)
	}
}

// testCommitAnsweredRollback: a COMMIT that the server answers with
// ROLLBACK (its transaction was aborted by an earlier error, reported in
// an earlier round trip) is an error, never a silent success.
func testCommitAnsweredRollback(t *testing.T, c *pgtest.Cluster) {
	e := newEnv(t, c, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := context.Background()
	s := &sender{conn: e.conn.PgConn(), log: slog.New(slog.DiscardHandler)}
	s.control(ctx, "BEGIN", nil, nil, "begin", 1)
	s.control(ctx, "INSERT INTO t VALUES (1)", nil, nil, "insert", 1)
	s.commit(ctx, 1)
	if err := s.flush(); err != nil {
		t.Fatalf("a transaction that commits: %v", err)
	}
	s.control(ctx, "BEGIN", nil, nil, "begin", 2)
	s.control(ctx, "INSERT INTO t VALUES (1)", nil, nil, "insert", 2)
	if err := s.flush(); err == nil || !strings.Contains(err.Error(), "duplicate key") {
		t.Fatalf("duplicate insert: got %v", err)
	}
	s.commit(ctx, 2)
	if err := s.flush(); err == nil || !strings.Contains(err.Error(), "answered ROLLBACK") {
		t.Fatalf("COMMIT of an aborted transaction: got %v, want an error", err)
	}
	e.expect(t, `SELECT count(*) FROM t`, "1")
}
