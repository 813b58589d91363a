package catalog

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

const catalogSchema = `
CREATE SCHEMA "Sales";
CREATE SCHEMA pglink;
CREATE TABLE pglink.state (id int PRIMARY KEY);
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TYPE pair AS (a int, b text);
CREATE TYPE moodpair AS (m mood, n int);
CREATE TABLE public.plain (id bigint PRIMARY KEY, name varchar(20) NOT NULL,
    twice bigint GENERATED ALWAYS AS (id * 2) STORED, moods mood[], p pair, mp moodpair, tags text[], r int4range);
CREATE TABLE "Sales"."Orders" ("OrderID" int, region text, note text, PRIMARY KEY (region, "OrderID") INCLUDE (note));
CREATE TABLE public.nokey (a int, b text);
CREATE TABLE public.full_ident (a int, b text);
ALTER TABLE public.full_ident REPLICA IDENTITY FULL;
CREATE TABLE public.idx_ident (a int NOT NULL, b int NOT NULL, c text);
CREATE UNIQUE INDEX idx_ident_ab ON public.idx_ident (b, a);
ALTER TABLE public.idx_ident REPLICA IDENTITY USING INDEX idx_ident_ab;
CREATE TABLE public.nothing (id int PRIMARY KEY);
ALTER TABLE public.nothing REPLICA IDENTITY NOTHING;
CREATE UNLOGGED TABLE public.scratch (id int PRIMARY KEY);
CREATE TABLE public.events (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')
    PARTITION BY HASH (id);
CREATE TABLE public.events_2024_h0 PARTITION OF public.events_2024 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE public.events_2024_h1 PARTITION OF public.events_2024 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.logs (msg text) PARTITION BY LIST (msg);
CREATE TABLE public.logs_a PARTITION OF public.logs FOR VALUES IN ('a');
ALTER TABLE public.logs REPLICA IDENTITY FULL;
INSERT INTO public.events SELECT g, date '2024-03-01' + g FROM generate_series(1, 500) g;
ANALYZE public.events;
CREATE SEQUENCE public.counter START 10;
SELECT nextval('public.counter'), nextval('public.counter');
CREATE SEQUENCE "Sales"."Fresh";
CREATE SEQUENCE public.owned OWNED BY public.plain.id;
`

func TestTables(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.CreateDB("cat")
	c.Exec("cat", catalogSchema)
	conn := c.Connect("cat")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	tables, err := Tables(ctx, conn, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]Table{}
	var keys []string
	for _, tb := range tables {
		byKey[tb.Key()] = tb
		keys = append(keys, tb.Key())
	}
	wantKeys := []string{"Sales.Orders", "public.events", "public.full_ident", "public.idx_ident", "public.logs",
		"public.nokey", "public.nothing", "public.plain", "public.scratch"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Fatalf("tables: got %v, want %v", keys, wantKeys)
	}

	plain := byKey["public.plain"]
	var colNames []string
	for _, col := range plain.Columns {
		colNames = append(colNames, col.Name)
	}
	if got, want := colNames, []string{"id", "name", "twice", "moods", "p", "mp", "tags", "r"}; !reflect.DeepEqual(got, want) {
		t.Errorf("plain columns: got %v, want %v", got, want)
	}
	if col := plain.Columns[1]; col.Type != "character varying(20)" || !col.NotNull || col.Generated || col.TypeOID != 1043 {
		t.Errorf("plain.name: got %+v", col)
	}
	if !plain.Columns[2].Generated {
		t.Errorf("plain.twice should be generated")
	}
	if got := len(plain.CopyColumns()); got != 7 {
		t.Errorf("plain copy columns: got %d, want 7", got)
	}
	portable := map[string]bool{}
	for _, col := range plain.Columns {
		portable[col.Name] = col.BinaryPortable
	}
	wantPortable := map[string]bool{"id": true, "name": true, "twice": true, "moods": false, "p": true,
		"mp": false, "tags": true, "r": true}
	if !reflect.DeepEqual(portable, wantPortable) {
		t.Errorf("binary portable: got %v, want %v", portable, wantPortable)
	}
	if got, want := plain.QualifiedName(), `"public"."plain"`; got != want {
		t.Errorf("qualified name: got %s, want %s", got, want)
	}

	orders := byKey["Sales.Orders"]
	if got, want := orders.PrimaryKey, []string{"region", "OrderID"}; !reflect.DeepEqual(got, want) {
		t.Errorf("orders PK: got %v, want %v", got, want)
	}
	if got, want := orders.IdentityColumns, []string{"region", "OrderID"}; !reflect.DeepEqual(got, want) {
		t.Errorf("orders identity: got %v, want %v", got, want)
	}
	if got, want := orders.QualifiedName(), `"Sales"."Orders"`; got != want {
		t.Errorf("qualified name: got %s, want %s", got, want)
	}

	checkIdentity(t, byKey)
	checkPartitions(t, byKey)
	if pl := byKey["public.plain"]; pl.SizeBytes < 8192 || pl.Partitions != nil {
		t.Errorf("plain: size %d, partitions %v", pl.SizeBytes, pl.Partitions)
	}
	if !byKey["public.scratch"].Unlogged || byKey["public.plain"].Unlogged {
		t.Errorf("unlogged flags wrong")
	}
}

func checkIdentity(t *testing.T, byKey map[string]Table) {
	t.Helper()
	cases := map[string]struct {
		ident byte
		cols  []string
	}{
		"public.nokey":      {'d', nil},
		"public.full_ident": {'f', nil},
		"public.idx_ident":  {'i', []string{"b", "a"}},
		"public.nothing":    {'n', nil},
		"public.plain":      {'d', []string{"id"}},
	}
	for key, want := range cases {
		tb := byKey[key]
		if tb.ReplicaIdentity != want.ident || !reflect.DeepEqual(tb.IdentityColumns, want.cols) {
			t.Errorf("%s identity: got %c %v, want %c %v", key, tb.ReplicaIdentity, tb.IdentityColumns, want.ident, want.cols)
		}
	}
	var all []Table
	for _, tb := range byKey {
		all = append(all, tb)
	}
	var bad []string
	for _, tb := range NoIdentity(all) {
		bad = append(bad, tb.Key())
	}
	slices.Sort(bad)
	// logs: REPLICA IDENTITY FULL on the root does not reach its partition.
	if got, want := bad, []string{"public.logs", "public.nokey", "public.nothing"}; !reflect.DeepEqual(got, want) {
		t.Errorf("NoIdentity: got %v, want %v", got, want)
	}
	if got, want := IdentityFix(byKey["public.logs"]), []string{`ALTER TABLE "public"."logs_a" REPLICA IDENTITY FULL;`}; !reflect.DeepEqual(got, want) {
		t.Errorf("IdentityFix(logs): got %v, want %v", got, want)
	}
}

func checkPartitions(t *testing.T, byKey map[string]Table) {
	t.Helper()
	ev := byKey["public.events"]
	if !ev.Partitioned {
		t.Fatalf("events should be partitioned")
	}
	var parts, leaves []string
	for _, p := range ev.Partitions {
		parts = append(parts, p.Key())
	}
	for _, p := range ev.Leaves() {
		leaves = append(leaves, p.Key())
	}
	if got, want := parts, []string{"public.events_2024", "public.events_2025", "public.events_2024_h0", "public.events_2024_h1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("events partitions: got %v, want %v", got, want)
	}
	if got, want := leaves, []string{"public.events_2025", "public.events_2024_h0", "public.events_2024_h1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("events leaves: got %v, want %v", got, want)
	}
	if ev.EstRows != 500 {
		t.Errorf("events est rows: got %d, want 500", ev.EstRows)
	}
	var sum int64
	for _, p := range ev.Partitions {
		sum += p.SizeBytes
	}
	if ev.SizeBytes < sum || sum < 8192 {
		t.Errorf("events size %d, sum of partitions %d", ev.SizeBytes, sum)
	}
}

func TestTablesFilterAndSequences(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.CreateDB("cat")
	c.Exec("cat", catalogSchema)
	conn := c.Connect("cat")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cases := []struct {
		f    Filter
		want []string
	}{
		{Filter{Include: []string{"Sales.*"}}, []string{"Sales.Orders"}},
		{Filter{Include: []string{"Orders", "*ident"}}, []string{"Sales.Orders", "public.full_ident", "public.idx_ident"}},
		{Filter{Include: []string{"public.*"}, Exclude: []string{"*_ident", "n*", "public.p*", "scratch"}}, []string{"public.events", "public.logs"}},
		{Filter{Include: []string{"orders"}}, nil}, // names are case-sensitive
	}
	for _, tc := range cases {
		tables, err := Tables(ctx, conn, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tb := range tables {
			got = append(got, tb.Key())
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("filter %+v: got %v, want %v", tc.f, got, tc.want)
		}
	}
	all, err := Tables(ctx, conn, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got := (Filter{Include: []string{"plain", "nosuch.*"}}).Unmatched(all); !reflect.DeepEqual(got, []string{"nosuch.*"}) {
		t.Errorf("Unmatched: got %v", got)
	}

	seqs, err := Sequences(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	want := []Sequence{
		{Schema: "Sales", Name: "Fresh", LastValue: 1, IsCalled: false},
		{Schema: "public", Name: "counter", LastValue: 11, IsCalled: true},
		{Schema: "public", Name: "owned", LastValue: 1, IsCalled: false, OwnedBy: "public.plain"},
	}
	if !reflect.DeepEqual(seqs, want) {
		t.Errorf("sequences: got %+v, want %+v", seqs, want)
	}
	v, err := ServerVersion(ctx, conn)
	if err != nil || v < 130000 {
		t.Errorf("server version: got %d, %v", v, err)
	}
}

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"abc", "abc", true}, {"abc", "abd", false}, {"*", "", true}, {"a*", "abc", true},
		{"*c", "abc", true}, {"a*b*b", "ab", false}, {"a*b*b", "abb", true}, {"a?c", "abc", false},
		{"*x*", "abc", false}, {"a*c", "ac", true},
	}
	for _, tc := range cases {
		if got := glob(tc.pattern, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q): got %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}
