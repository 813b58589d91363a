package assess

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// byCheck returns the findings of one check.
func byCheck(fs []Finding, check string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

// wantFinding fails unless exactly one finding of check has severity sev
// and mentions every string of want (in What, Remedy or SQL).
func wantFinding(t *testing.T, fs []Finding, check string, sev Severity, want ...string) Finding {
	t.Helper()
	got := byCheck(fs, check)
	if len(got) != 1 {
		t.Errorf("check %s: %d findings, want 1: %+v", check, len(got), got)
		return Finding{}
	}
	f := got[0]
	if f.Severity != sev {
		t.Errorf("check %s: severity %s, want %s (%s)", check, f.Severity, sev, f.What)
	}
	text := f.What + " " + f.Remedy + " " + strings.Join(f.SQL, " ")
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("check %s: %q does not mention %q", check, text, w)
		}
	}
	return f
}

func noFinding(t *testing.T, fs []Finding, check string) {
	t.Helper()
	if got := byCheck(fs, check); len(got) > 0 {
		t.Errorf("check %s: unexpected findings %+v", check, got)
	}
}

// sourceFixture is a source with a bit of everything an assessment looks
// at: wal_level = replica, its only replication slot taken, a table
// without key, a partitioned one without key, an unlogged table, a large
// object, a materialized view, a sequence, an event trigger, an extension,
// objects owned by and granted to roles the target lacks, and settings of
// the database and of a role in it.
func sourceFixture(t *testing.T) *pgtest.Cluster {
	src := pgtest.Start(t, pgtest.Options{Settings: map[string]string{
		"wal_level": "replica", "max_replication_slots": "1", "max_slot_wal_keep_size": "1MB"}})
	src.CreateDB("app")
	src.Exec("app",
		`CREATE EXTENSION citext`,
		`CREATE ROLE appowner`, `CREATE ROLE reporting`,
		`CREATE TABLE public.ok (id serial PRIMARY KEY, name citext)`,
		`CREATE TABLE public.nokey (v int)`,
		`CREATE TABLE public.events (at date NOT NULL, v int) PARTITION BY RANGE (at)`,
		`CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`,
		`CREATE UNLOGGED TABLE public.scratch (id int PRIMARY KEY)`,
		`ALTER TABLE public.nokey OWNER TO appowner`,
		`GRANT SELECT ON public.ok TO reporting`,
		`SELECT lo_from_bytea(0, 'a large object')`,
		`CREATE MATERIALIZED VIEW public.ok_count AS SELECT count(*) FROM public.ok`,
		`CREATE FUNCTION public.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$`,
		`CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION public.log_ddl()`,
		`SELECT pg_create_physical_replication_slot('standby')`,
		`ALTER DATABASE app SET work_mem = '8MB'`,
		`ALTER ROLE reporting IN DATABASE app SET default_transaction_read_only = on`)
	return src
}

func TestAssessFindings(t *testing.T) {
	src := sourceFixture(t)
	dst := pgtest.Start(t, pgtest.Options{})
	// The target database differs in encoding and locale, and holds one
	// of the tables already.
	dst.Exec("postgres", `CREATE DATABASE app TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'`)
	dst.Exec("app", `CREATE TABLE public.ok (id int PRIMARY KEY)`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	rep, err := Run(ctx, Options{Source: src.URL("app"), Target: dst.URL("app")})
	if err != nil {
		t.Fatal(err)
	}
	fs := rep.Findings
	wantFinding(t, fs, "wal_level", Blocker, `wal_level is "replica"`, "ALTER SYSTEM SET wal_level = logical;")
	wantFinding(t, fs, "replication_slots", Blocker, "no free replication slots", "ALTER SYSTEM SET max_replication_slots = 3;")
	wantFinding(t, fs, "replica_identity", Blocker, "public.nokey", "public.events",
		`ALTER TABLE "public"."nokey" REPLICA IDENTITY FULL;`, `ALTER TABLE "public"."events" REPLICA IDENTITY FULL;`,
		`ALTER TABLE "public"."events_2024" REPLICA IDENTITY FULL;`)
	wantFinding(t, fs, "unlogged_tables", Blocker, "public.scratch", `ALTER TABLE "public"."scratch" SET LOGGED;`)
	noFinding(t, fs, "partition_truncate") // a superuser gives each partition pglink's truncate trigger
	noFinding(t, fs, "ddl_capture")        // and captures its schema changes
	wantFinding(t, fs, "large_objects", Warning, "1 large object:", "--blobs")
	wantFinding(t, fs, "materialized_views", Info, "public.ok_count", "pglink refreshes them", `REFRESH MATERIALIZED VIEW public.ok_count;`)
	wantFinding(t, fs, "sequences", Info, "1 sequence:")
	wantFinding(t, fs, "event_triggers", Warning, "log_ddl")
	wantFinding(t, fs, "max_slot_wal_keep_size", Warning, "1.0 MB", "falls behind", "dropped and seeded again")
	wantFinding(t, fs, "database_settings", Info, "carried to the target", "work_mem = 8MB")
	wantFinding(t, fs, "database_settings_not_carried", Info, "default_transaction_read_only = on for role reporting")
	wantFinding(t, fs, "logical_decoding_work_mem", Info, "64MB")
	wantFinding(t, fs, "wal_senders", Info, "free")
	wantFinding(t, fs, "size", Info, "database app takes")
	noFinding(t, fs, "replication_right")
	noFinding(t, fs, "select_right")
	noFinding(t, fs, "owner_right")
	// Target.
	wantFinding(t, fs, "tables_exist", Blocker, "public.ok", "--schema existing")
	wantFinding(t, fs, "roles_missing", Warning, "appowner", "reporting", `CREATE ROLE "appowner";`)
	wantFinding(t, fs, "extensions", Info, "citext")
	wantFinding(t, fs, "encoding", Warning, "UTF8", "LATIN1", `ENCODING 'UTF8'`)
	wantFinding(t, fs, "collation", Warning, "C.UTF-8", `LC_COLLATE 'C.UTF-8'`)
	noFinding(t, fs, "version_order")
	noFinding(t, fs, "target_rights")
	wantFinding(t, fs, "replication_origins", Info, "replication origin entries free (a link uses two)")
	if !rep.Blocked() || rep.Blockers != 5 {
		t.Errorf("report: %d blockers, want 5", rep.Blockers)
	}
	if rep.Findings[0].Severity != Blocker || rep.Findings[len(fs)-1].Severity != Info {
		t.Errorf("findings are not ordered by severity")
	}
	if rep.Source.Tables != 4 || rep.Target == nil || !rep.Target.DatabaseExists || rep.Target.Encoding != "LATIN1" {
		t.Errorf("servers: %+v, %+v", rep.Source, rep.Target)
	}
	// The servers run on this machine: free disk is measured.
	if rep.Source.FreeDisk == nil || *rep.Source.FreeDisk <= 0 || !strings.Contains(rep.Source.FreeDiskNote, "pg_wal") {
		t.Errorf("source free disk: %v, %q", rep.Source.FreeDisk, rep.Source.FreeDiskNote)
	}
}

// TestAssessTargetStates covers a target database that does not exist yet
// and a target that cannot be reached.
func TestAssessTargetStates(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.ok (id int PRIMARY KEY)`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	rep, err := Run(ctx, Options{Source: src.URL("app"), Target: dst.URL("fresh")})
	if err != nil {
		t.Fatal(err)
	}
	wantFinding(t, rep.Findings, "database", Info, "database fresh does not exist on the target yet")
	noFinding(t, rep.Findings, "encoding")
	noFinding(t, rep.Findings, "collation")
	if rep.Blocked() {
		t.Errorf("a clean source and a new target database are blocked: %+v", Blockers(rep.Findings))
	}
	if rep.Target.DatabaseExists || rep.Target.Database != "fresh" {
		t.Errorf("target: %+v", rep.Target)
	}

	rep, err = Run(ctx, Options{Source: src.URL("app"), Target: "postgres://u:sekret@127.0.0.1:1/x?connect_timeout=2"})
	if err != nil {
		t.Fatal(err)
	}
	wantFinding(t, rep.Findings, "reachable", Blocker, "cannot reach the server at 127.0.0.1:1", "listen")
	var out bytes.Buffer
	if err := rep.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "sekret") {
		t.Errorf("the password shows in the report")
	}
	if _, err := Run(ctx, Options{Source: "postgres://postgres@127.0.0.1:1/app?connect_timeout=2"}); err == nil {
		t.Errorf("an unreachable source gives a report, want an error")
	}
}

// TestAssessRights checks a source user without rights: each missing right
// is a blocker with the GRANT or ALTER ROLE that gives it, and the
// password shows nowhere.
func TestAssessRights(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.mine (id int PRIMARY KEY)`, `CREATE TABLE public.secret (id int PRIMARY KEY)`,
		`CREATE TABLE public.theirs (id int PRIMARY KEY)`, `CREATE ROLE team`, `ALTER TABLE public.theirs OWNER TO team`,
		`CREATE ROLE weak LOGIN PASSWORD 'weakpw'`, `GRANT SELECT ON public.mine, public.theirs TO weak`,
		`CREATE TABLE public.parted (id int PRIMARY KEY) PARTITION BY RANGE (id)`,
		`CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (10)`,
		`CREATE TABLE public.parted_2 PARTITION OF public.parted FOR VALUES FROM (10) TO (20)`,
		`ALTER TABLE public.parted OWNER TO weak`, `ALTER TABLE public.parted_1 OWNER TO weak`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := strings.Replace(src.URL("app"), "postgres@", "weak:weakpw@", 1)
	rep, err := Run(ctx, Options{Source: url})
	if err != nil {
		t.Fatal(err)
	}
	fs := rep.Findings
	wantFinding(t, fs, "replication_right", Blocker, `ALTER ROLE "weak" WITH REPLICATION;`)
	wantFinding(t, fs, "create_right", Blocker, `GRANT CREATE ON DATABASE "app" TO "weak";`)
	wantFinding(t, fs, "ddl_capture", Warning, `role weak is not a superuser`, "--ddl ignore")
	wantFinding(t, fs, "select_right", Blocker, "public.secret", `GRANT SELECT ON public.secret TO "weak";`)
	// Only a partition's owner may give it the trigger that carries its
	// TRUNCATE.
	f := wantFinding(t, fs, "partition_truncate", Warning, "public.parted_2", "owner")
	if strings.Contains(f.What, "parted_1") {
		t.Errorf("partition_truncate names a partition the user owns: %s", f.What)
	}
	f = wantFinding(t, fs, "owner_right", Blocker, "public.mine", "public.secret", "public.theirs",
		`GRANT "team" TO "weak";`, "owned by the superuser postgres need a superuser")
	if strings.Contains(strings.Join(f.SQL, " "), `"postgres"`) {
		t.Errorf("the remedy makes the user a member of a superuser role: %q", f.SQL)
	}
	// The free disk is not visible to a user without pg_read_all_settings.
	if rep.Source.FreeDisk != nil || !strings.Contains(rep.Source.FreeDiskNote, "cannot be found out") {
		t.Errorf("free disk for an unprivileged user: %v, %q", rep.Source.FreeDisk, rep.Source.FreeDiskNote)
	}
	var out bytes.Buffer
	if err := rep.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "weakpw") {
		t.Errorf("the password shows in the report")
	}
}

// TestAssessSample samples a source under a write load: WAL and commits
// are counted, and an estimate that overruns max_slot_wal_keep_size
// warns that the slot would be invalidated.
func TestAssessSample(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"max_slot_wal_keep_size": "1MB"}})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id serial PRIMARY KEY, pad text)`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := src.Connect("app")
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for loadCtx.Err() == nil {
			conn.Exec(loadCtx, `INSERT INTO public.t (pad) SELECT repeat('x', 200) FROM generate_series(1, 50)`)
		}
	}()
	var sampled time.Duration
	rep, err := Run(ctx, Options{Source: src.URL("app"), Sample: 2 * time.Second, CopyRate: 1024,
		OnSample: func(d time.Duration) { sampled = d }})
	stopLoad()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	s, e := rep.Sample, rep.Estimate
	if sampled != 2*time.Second || s == nil || e == nil {
		t.Fatalf("sample %v, estimate %v, told %v", s, e, sampled)
	}
	if s.Seconds < 1.9 || s.WALBytes <= 0 || s.Commits <= 0 || s.WALBytesPerSec <= 0 {
		t.Errorf("sample: %+v", s)
	}
	if e.AssumedCopyBytesPerSec != 1024 || e.SeedSeconds <= 0 || e.WALDuringSeedBytes <= 1<<20 || e.TargetCores < 2 {
		t.Errorf("estimate: %+v", e)
	}
	if !strings.Contains(strings.Join(e.Reasoning, "\n"), "assumed 1.0 kB/s") {
		t.Errorf("reasoning does not state the assumed throughput: %q", e.Reasoning)
	}
	wantFinding(t, rep.Findings, "slot_invalidation", Warning, "max_slot_wal_keep_size", "ALTER SYSTEM SET max_slot_wal_keep_size")
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"sample over 2 seconds", "estimate: seeding takes", "nothing blocks a link"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("text report lacks %q:\n%s", w, out.String())
		}
	}
}

// TestReportJSON checks that empty lists are [] in JSON, never null.
func TestReportJSON(t *testing.T) {
	var out bytes.Buffer
	rep := Report{Findings: []Finding{{Severity: Info, Check: "x"}}, Estimate: &Estimate{}}
	if err := rep.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "null") && !strings.Contains(out.String(), `"free_disk_bytes": null`) {
		t.Errorf("JSON holds a null list:\n%s", out.String())
	}
	if !strings.Contains(out.String(), `"sql": []`) || !strings.Contains(out.String(), `"reasoning": []`) {
		t.Errorf("JSON lists are not []:\n%s", out.String())
	}
}
