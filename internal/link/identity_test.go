package link

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/validate"
)

// TestTargetIsSourceRefused gives the source again as the target, spelled
// otherwise: start (with --schema existing and --truncate-existing, the
// options that would empty the tables), assess and validate refuse it, and
// the source keeps its rows and gets nothing of pglink's.
func TestTargetIsSourceRefused(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("shop")
	src.Exec("shop", `CREATE TABLE items (id int PRIMARY KEY, v text)`,
		`INSERT INTO items SELECT g, 'v' FROM generate_series(1, 5000) g`)
	source := src.URL("shop")
	spellings := []string{
		strings.Replace(source, "127.0.0.1", "localhost", 1),
		fmt.Sprintf("host=localhost port=%d dbname=shop user=postgres sslmode=disable", src.Port),
	}
	ctx := context.Background()
	for _, target := range spellings {
		err := Run(ctx, Config{Name: "self", Source: source, Target: target, Schema: SchemaExisting, TruncateExisting: true})
		if !errors.Is(err, assess.ErrSameDatabase) || !contains(err.Error(), "target:", "the source database itself", "another server") {
			t.Errorf("start into %s: %v, want the same-database refusal", target, err)
		}
		rep, err := assess.Run(ctx, assess.Options{Source: source, Target: target, Schema: SchemaExisting})
		if err != nil {
			t.Fatalf("assess: %v", err)
		}
		if len(rep.Findings) == 0 || rep.Findings[0].Check != "same_database" || !rep.Blocked() {
			t.Errorf("assess into %s: findings %+v, want same_database first", target, rep.Findings)
		}
	}
	for what, sql := range map[string]string{
		"rows":          `SELECT count(*) FROM items`,
		"slots":         `SELECT count(*) FROM pg_replication_slots`,
		"publications":  `SELECT count(*) FROM pg_publication`,
		"pglink schema": `SELECT count(*) FROM pg_namespace WHERE nspname = 'pglink'`,
		"triggers":      `SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pglink%'`,
		"settings":      `SELECT count(*) FROM pg_db_role_setting`,
	} {
		want := "0"
		if what == "rows" {
			want = "5000"
		}
		if got := src.QueryString("shop", sql); got != want {
			t.Errorf("after the refusals the source has %s %s, want %s", got, what, want)
		}
	}

	// A link that exists refuses the target given as its source.
	cfg := Config{Name: "real", Source: source, Target: dst.URL("shop")}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)
	_, err := validate.Link(ctx, validate.LinkOptions{Name: "real", Source: strings.Replace(cfg.Target, "127.0.0.1", "localhost", 1), Target: cfg.Target})
	if !errors.Is(err, assess.ErrSameDatabase) {
		t.Errorf("validate with the target as source: %v, want the same-database refusal", err)
	}
	ctl, err := state.OpenControl(ctx, "real", cfg.Target, cfg.Target)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close(ctx)
	if err := ctl.CheckSource(ctx, ctl.Conn()); !errors.Is(err, assess.ErrSameDatabase) {
		t.Errorf("failover's source check with the target as source: %v, want the same-database refusal", err)
	}
}

// TestLinkChainsRefused refuses a target that is the source of a running
// link, and a source that is a link's target, in start and in assess.
func TestLinkChainsRefused(t *testing.T) {
	a := pgtest.Start(t, pgtest.Options{})
	b := pgtest.Start(t, pgtest.Options{})
	a.CreateDB("app")
	a.CreateDB("other")
	for _, db := range []string{"app", "other"} {
		a.Exec(db, `CREATE TABLE t (id int PRIMARY KEY)`, `INSERT INTO t SELECT generate_series(1, 10)`)
	}
	l := startTestLink(t, Config{Name: "ab", Source: a.URL("app"), Target: b.URL("app")})
	waitPhase(t, l, "replicating", time.Minute)
	ctx := context.Background()
	for _, c := range []struct {
		name, source, target, check string
	}{
		{"into_source", a.URL("other"), a.URL("app"), "target_is_link_source"},
		{"from_target", b.URL("app"), a.URL("fresh"), "source_is_link_target"},
	} {
		err := Run(ctx, Config{Name: c.name, Source: c.source, Target: c.target, Schema: SchemaExisting, TruncateExisting: true})
		var pe *ProblemsError
		if !errors.As(err, &pe) || !contains(err.Error(), "pglink link ab") {
			t.Errorf("start %s: %v, want a refusal naming link ab", c.name, err)
		}
		rep, err := assess.Run(ctx, assess.Options{Source: c.source, Target: c.target})
		if err != nil {
			t.Fatalf("assess %s: %v", c.name, err)
		}
		found := false
		for _, f := range rep.Findings {
			found = found || f.Check == c.check && f.Severity == assess.Blocker
		}
		if !found {
			t.Errorf("assess %s: no %s blocker in %+v", c.name, c.check, rep.Findings)
		}
	}
	if got := a.QueryString("app", `SELECT count(*) FROM t`); got != "10" {
		t.Errorf("the refused link into a's app left %s rows, want 10", got)
	}
	if got := a.QueryString("other", `SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pglink_from%'`); got != "0" {
		t.Errorf("the refused link left %s slots", got)
	}
}

// TestSchemaExistingRefusesRows refuses to empty target tables that hold
// rows unless told to, and then copies over them.
func TestSchemaExistingRefusesRows(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	dst.CreateDB("app")
	for _, c := range []*pgtest.Cluster{src, dst} {
		c.Exec("app", `CREATE TABLE kept (id int PRIMARY KEY, v text)`, `CREATE TABLE empty (id int PRIMARY KEY)`)
	}
	src.Exec("app", `INSERT INTO kept SELECT g, 'src' FROM generate_series(1, 100) g`)
	dst.Exec("app", `INSERT INTO kept SELECT g, 'dst' FROM generate_series(50, 60) g`)
	cfg := Config{Name: "ex", Source: src.URL("app"), Target: dst.URL("app"), Schema: SchemaExisting}
	err := Run(context.Background(), cfg)
	if err == nil || !contains(err.Error(), "public.kept", "hold rows", "--truncate-existing") || strings.Contains(err.Error(), "public.empty") {
		t.Fatalf("start over a table with rows: %v, want a refusal naming public.kept", err)
	}
	if got := dst.QueryString("app", `SELECT count(*) FROM kept`); got != "11" {
		t.Errorf("the refusal changed the target's rows: %s, want 11", got)
	}
	cfg.TruncateExisting = true
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)
	assertSame(t, src, dst, "app", "app")
}
