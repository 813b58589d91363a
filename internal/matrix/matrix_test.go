package matrix

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/compare"
	"github.com/pglink/pglink/internal/failover"
	"github.com/pglink/pglink/internal/link"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/status"
)

// pair is one source and target major version, and how the target gets
// its schema.
type pair struct {
	src, dst int
	schema   string
}

func (p pair) String() string { return fmt.Sprintf("%d-%d", p.src, p.dst) }

// allPairs is the whole matrix: pg_dump 15 (Debian's) dumps sources 13 to
// 15, into every target they may be upgraded to; a newer source goes into
// a target of its own version whose schema the user loaded.
func allPairs() []pair {
	var ps []pair
	for _, s := range []int{13, 14, 15} {
		for _, d := range []int{15, 16, 17, 18} {
			ps = append(ps, pair{s, d, link.SchemaCopy})
		}
	}
	for _, v := range []int{16, 17, 18} {
		ps = append(ps, pair{v, v, link.SchemaExisting})
	}
	return ps
}

// fastPairs are the ones make test runs: the oldest source (protocol 1)
// into a recent target, and Debian's 15 into the newest.
var fastPairs = []string{"13-17", "15-18"}

// selectedPairs reads PGLINK_TEST_VERSIONS: "all" for the whole matrix,
// a comma-separated list of pairs ("14-16,18-18"), or unset for fastPairs.
func selectedPairs(t *testing.T) []pair {
	want := fastPairs
	switch v := os.Getenv("PGLINK_TEST_VERSIONS"); v {
	case "":
	case "all":
		return allPairs()
	default:
		want = strings.Split(v, ",")
	}
	var ps []pair
	for _, w := range want {
		found := false
		for _, p := range allPairs() {
			if p.String() == strings.TrimSpace(w) {
				ps, found = append(ps, p), true
			}
		}
		if !found {
			t.Fatalf("PGLINK_TEST_VERSIONS: no pair %q in the matrix", w)
		}
	}
	return ps
}

// TestVersionMatrix links each pair of versions on the hard-case fixture of
// the end-to-end test (every change kind, unchanged TOAST, replica
// identities, a row moving between partitions, identity and generated
// columns, quoted names), seeded and streamed under a writer, and finishes
// with a planned failover: every write the writer saw committed is on the
// target, both sides are the same row by row, the target's sequences go on
// past the source's, and no slot is left on the source.
func TestVersionMatrix(t *testing.T) {
	for _, p := range selectedPairs(t) {
		t.Run(p.String(), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			runPair(t, p)
			t.Logf("PostgreSQL %d -> %d (--schema %s) took %s", p.src, p.dst, p.schema, time.Since(start).Round(time.Second))
		})
	}
}

func runPair(t *testing.T, p pair) {
	src := pgtest.Start(t, pgtest.Options{Version: p.src})
	dst := pgtest.Start(t, pgtest.Options{Version: p.dst})
	fixture := readFixture(t, p.src)
	src.CreateDB("shop")
	src.Exec("shop", fixture)
	if p.schema == link.SchemaExisting {
		dst.CreateDB("shop")
		dst.Exec("shop", fixture)
		dst.Exec("shop", `TRUNCATE shop.types, "Mixed Case"."Order Items", shop.events, shop.log, shop.by_index,
			shop.customers, shop.orders RESTART IDENTITY`)
	}
	source, target := src.URL("shop"), dst.URL("shop")
	assessPair(t, source, target, p.schema)

	ctx, stopWriter := context.WithCancel(context.Background())
	defer stopWriter()
	w := &writer{}
	wdone := make(chan struct{})
	go func() { w.run(ctx, source); close(wdone) }()

	name := "m" + strings.ReplaceAll(p.String(), "-", "_")
	done := runLink(t, link.Config{Name: name, Source: source, Target: target, Jobs: 2, Schema: p.schema,
		Logger: slog.New(slog.NewTextHandler(pgtest.LogTo(t), &slog.HandlerOptions{Level: slog.LevelInfo}))})
	waitFor(t, "the link replicating", 2*time.Minute, done, func() bool {
		st, err := status.Read(context.Background(), name, target, "")
		return err == nil && string(st.Phase) == "replicating" && st.LagSeconds != nil
	})
	execFile(t, src, "shop", "../link/testdata/changes.sql")
	if w.count() == 0 {
		t.Fatalf("the writer committed nothing: %v", w.err())
	}

	plan, err := failover.Build(failover.Options{Name: name, Source: source, Target: target, Kind: failover.Planned,
		Validate: true, MaxLag: 30 * time.Second, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	res, err := failover.Run(context.Background(), plan)
	if err != nil {
		var out strings.Builder
		res.WriteTable(&out)
		t.Fatalf("planned failover: %v\n%s", err, out.String())
	}
	<-wdone
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Errorf("the link's process did not stop after the failover")
	}
	checkFailedOver(t, src, dst, w)
}

// assessPair checks that pglink assess finds nothing that blocks the pair,
// as pglink start, which runs the same checks, must not.
func assessPair(t *testing.T, source, target, schema string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := assess.Run(ctx, assess.Options{Source: source, Target: target, Schema: schema})
	if err != nil {
		t.Fatalf("assess: %v", err)
	}
	for _, f := range assess.Blockers(rep.Findings) {
		t.Errorf("assess: blocker %s on the %s: %s", f.Check, f.Side, f.What)
	}
}

// checkFailedOver checks what a planned failover under the writer's load
// leaves: every id the writer saw committed on the target, both sides the
// same row by row, the target's sequences past the source's, no slot left.
func checkFailedOver(t *testing.T, src, dst *pgtest.Cluster, w *writer) {
	t.Helper()
	t.Logf("the writer committed %d rows, then: %v", w.count(), w.err())
	if e := w.err(); e == nil || !strings.Contains(e.Error(), "terminat") && !strings.Contains(e.Error(), "read-only") && !strings.Contains(e.Error(), "fenced") {
		t.Errorf("the writer should have been stopped by the fence, got %v", e)
	}
	ids := w.ids()
	if got := dst.QueryString("shop", "SELECT count(*) FROM shop.types WHERE id = ANY($1)", ids); got != strconv.Itoa(len(ids)) {
		t.Errorf("%s of the %d rows the writer saw committed are on the target", got, len(ids))
	}
	assertSame(t, src, dst)
	if err := pgtest.ExecOn(dst.URL("shop"), `INSERT INTO shop.types (n) VALUES (1)`,
		`INSERT INTO shop.customers (name) VALUES ('after')`, `INSERT INTO shop.events VALUES ('2025-05-05', 9999, 'after')`); err != nil {
		t.Fatalf("the target refuses writes after the failover: %v", err)
	}
	for _, q := range []string{"SELECT max(id) FROM shop.types", "SELECT max(id) FROM shop.customers"} {
		s, _ := strconv.ParseInt(src.QueryString("shop", q), 10, 64)
		d, _ := strconv.ParseInt(dst.QueryString("shop", q), 10, 64)
		if d <= s {
			t.Errorf("%s: target %d, source %d: the target's sequence did not go on past the source's", q, d, s)
		}
	}
	if n := src.QueryString("shop", "SELECT count(*) FROM pg_replication_slots"); n != "0" {
		t.Errorf("%s replication slots left on the source", n)
	}
}

// runLink runs a link in the test process until it stops by itself (after
// the failover) or the test ends; done closes when it has returned.
func runLink(t *testing.T, cfg link.Config) chan struct{} {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := link.Run(ctx, cfg); err != nil && ctx.Err() == nil {
			t.Logf("link %s: %v", cfg.Name, err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return done
}

// writer inserts rows into the fixture's identity table on the source
// until it is refused, and remembers every id whose commit it saw.
type writer struct {
	mu        sync.Mutex
	committed []int64
	stopErr   error
}

func (w *writer) run(ctx context.Context, url string) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		w.stop(err)
		return
	}
	defer conn.Close(context.Background())
	for i := 0; ctx.Err() == nil; i++ {
		var id int64
		err := conn.QueryRow(ctx, `INSERT INTO shop.types (n, big) VALUES ($1::int, repeat('w', $1::int % 5000)) RETURNING id`, i).Scan(&id)
		if err != nil {
			w.stop(err)
			return
		}
		w.mu.Lock()
		w.committed = append(w.committed, id)
		w.mu.Unlock()
		time.Sleep(5 * time.Millisecond) // a steady load, not a saturating one: the machine is shared
	}
}

func (w *writer) stop(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopErr = err
}

func (w *writer) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopErr
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.committed)
}

func (w *writer) ids() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.committed...)
}

func waitFor(t *testing.T, what string, timeout time.Duration, done chan struct{}, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(100 * time.Millisecond) {
		select {
		case <-done:
			t.Fatalf("wait for %s: the link stopped (see its log)", what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("wait for %s: still not there after %s", what, timeout)
		}
	}
}

func assertSame(t *testing.T, src, dst *pgtest.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := compare.Databases(ctx, src.Connect("shop"), dst.Connect("shop"))
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	if !res.Equal() || res.Rows == 0 {
		t.Fatalf("source and target differ:\n%s", res.String())
	}
	t.Logf("source and target are the same: %s", res.String())
}

// readFixture returns the end-to-end test's fixture for a source of major
// version v: PostgreSQL 13 has no numeric infinity, so there the row that
// holds one holds NaN instead.
func readFixture(t *testing.T, v int) string {
	t.Helper()
	b, err := os.ReadFile("../link/testdata/fixture.sql")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if v < 14 {
		const inf = "('Infinity', 0, -0,"
		if !strings.Contains(s, inf) {
			t.Fatalf("the fixture no longer has the row %s...", inf)
		}
		s = strings.Replace(s, inf, "('NaN', 0, -0,", 1)
	}
	return s
}

func execFile(t *testing.T, c *pgtest.Cluster, db, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Exec(db, string(b))
}
