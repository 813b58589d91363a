package link

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestBadInput checks that each kind of bad input fails with an error that
// names the side, the cause and the fix, and leaves nothing behind.
func TestBadInput(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	replica := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_level": "replica"}})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.ok (id int PRIMARY KEY)`, `CREATE TABLE public.nokey (v int)`,
		`CREATE ROLE weak LOGIN PASSWORD 'weakpw'`, `GRANT SELECT ON ALL TABLES IN SCHEMA public TO weak`)
	replica.CreateDB("app")
	replica.Exec("app", `CREATE TABLE public.ok (id int PRIMARY KEY)`)
	dst.CreateDB("busy")
	dst.Exec("busy", `CREATE TABLE public.ok (id int PRIMARY KEY)`)
	src.Exec("app", `SELECT pg_create_logical_replication_slot('pglink_taken', 'pgoutput')`)
	weak := strings.Replace(src.URL("app"), "postgres@", "weak:weakpw@", 1)
	weakPW := strings.Replace(src.URL("app"), "postgres@", "weak:wrong@", 1)

	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"invalid name", Config{Name: "Bad-Name", Source: src.URL("app"), Target: dst.URL("t1")}, []string{"invalid link name"}},
		{"no source", Config{Name: "x", Target: dst.URL("t1")}, []string{"source", "--source", "PGLINK_SOURCE"}},
		{"unreachable source", Config{Name: "x", Source: "postgres://postgres@127.0.0.1:1/app?connect_timeout=2", Target: dst.URL("t1")},
			[]string{"source: cannot reach", "Fix:"}},
		{"wrong password", Config{Name: "x", Source: weakPW, Target: dst.URL("t1")}, []string{"source: password authentication failed", "Fix:"}},
		{"wal_level", Config{Name: "x", Source: replica.URL("app"), Target: dst.URL("t1")}, []string{"source: wal_level", "ALTER SYSTEM SET wal_level = logical"}},
		{"no key", Config{Name: "x", Source: src.URL("app"), Target: dst.URL("t2")}, []string{"public.nokey", "REPLICA IDENTITY FULL"}},
		{"no replication right", Config{Name: "x", Source: weak, Target: dst.URL("t3"), Tables: []string{"public.ok"}}, []string{"REPLICATION", "ALTER ROLE"}},
		{"conflicting tables", Config{Name: "x", Source: src.URL("app"), Target: dst.URL("busy"), Tables: []string{"ok"}}, []string{"target: tables already exist: public.ok", "--schema existing"}},
		{"slot of someone else", Config{Name: "taken", Source: src.URL("app"), Target: dst.URL("t4"), Tables: []string{"ok"}}, []string{"pglink_taken already exists"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := Run(ctx, tc.cfg)
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "weakpw") || strings.Contains(err.Error(), "wrong@") {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
	// Nothing half-made: no slot but the foreign one, no publication, no pglink schema.
	if got := src.QueryString("app", "SELECT string_agg(slot_name, ',') FROM pg_replication_slots"); got != "pglink_taken" {
		t.Errorf("source slots after failed starts: %s", got)
	}
	if got := src.QueryString("app", "SELECT count(*) FROM pg_publication"); got != "0" {
		t.Errorf("source has %s publications after failed starts", got)
	}
	if got := dst.QueryString("busy", "SELECT count(*) FROM pg_namespace WHERE nspname = 'pglink'"); got != "0" {
		t.Errorf("target database busy keeps a pglink schema after a failed start")
	}
	if got := dst.QueryString("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 't_'"); got != "0" {
		t.Errorf("%s target databases created by failed starts are left behind", got)
	}
	if got := dst.QueryString("busy", "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pglink%'"); got != "0" {
		t.Errorf("target database busy keeps pglink triggers")
	}
}
