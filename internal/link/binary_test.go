package link

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// syncBuffer is a log a test reads while the link writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// loggedLink starts a link whose log goes to the test's log and to the
// returned buffer.
func loggedLink(t *testing.T, cfg Config) (*testLink, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	w := multiWriter{pgtest.LogTo(t), buf}
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Live = NewLive(cfg.Name)
	return startTestLink(t, cfg), buf
}

type multiWriter []interface{ Write([]byte) (int, error) }

func (m multiWriter) Write(p []byte) (int, error) {
	for _, w := range m {
		w.Write(p)
	}
	return len(p), nil
}

// walsenderOptions returns the START_REPLICATION command of the source's
// walsenders that stream (what pgoutput was asked for), one per line.
func walsenderOptions(src *pgtest.Cluster, db string) string {
	return src.QueryString(db, `SELECT coalesce(string_agg(query, E'\n'), '') FROM pg_stat_activity
		WHERE backend_type = 'walsender' AND query LIKE 'START_REPLICATION%'`)
}

// waitFormat waits until the running session of l streams in format, as
// the live view and the source's walsender both say.
func waitFormat(t *testing.T, l *testLink, src *pgtest.Cluster, db, format string) {
	t.Helper()
	waitFor(t, "a session streaming in "+format, 2*time.Minute, l, func() (bool, error) {
		if l.cfg.Live.Snapshot().StreamFormat != format {
			return false, nil
		}
		opts := walsenderOptions(src, db)
		return opts != "" && strings.Contains(opts, "binary 'true'") == (format == formatBinary), nil
	})
}

// runBinaryFixture links the built-in types fixture from a source of
// major version srcV into a target of dstV, checks that the session
// streams in binary, runs every kind of change and compares both sides
// row by row.
func runBinaryFixture(t *testing.T, srcV, dstV int) {
	src := pgtest.Start(t, pgtest.Options{Version: srcV})
	dst := pgtest.Start(t, pgtest.Options{Version: dstV})
	src.CreateDB("shop")
	execFile(t, src, "shop", "testdata/binary_fixture.sql")
	cfg := Config{Name: "bin", Source: src.URL("shop"), Target: dst.URL("shop_copy"), Binary: BinaryAuto}
	l, log := loggedLink(t, cfg)
	waitPhase(t, l, "replicating", 2*time.Minute)
	waitFormat(t, l, src, "shop", formatBinary)
	assertSame(t, src, dst, "shop", "shop_copy")

	execFile(t, src, "shop", "testdata/binary_changes.sql")
	waitCaughtUp(t, l, src, "shop", 2*time.Minute)
	res := assertSame(t, src, dst, "shop", "shop_copy")
	t.Logf("source and target are the same: %s", res.String())
	if got := count(t, dst, "shop_copy", "SELECT count(*) FROM shop.log WHERE msg = 'dup'"); got != "2" {
		t.Errorf("REPLICA IDENTITY FULL delete of one duplicate: target has %s rows, want 2", got)
	}
	if !strings.Contains(log.String(), "stream_format=binary") {
		t.Errorf("the log does not say that the session streams in binary")
	}
	if strings.Contains(log.String(), "set-based statements failed") {
		t.Errorf("set-based statements fell back to row by row on binary values")
	}
	if n := l.cfg.Live.Snapshot().Reconnects; n != 0 {
		t.Errorf("%d reconnections, want none", n)
	}
}

// TestBinaryStream streams the built-in types fixture in binary form
// (values pass through to the target untouched, in row statements and
// set-based ones) and compares both sides row by row after every kind of
// change: NULLs, unchanged TOASTed values, key changes, deletes.
func TestBinaryStream(t *testing.T) {
	runBinaryFixture(t, 15, 15)
}

// TestBinaryStreamCrossVersion does the same from PostgreSQL 14 into 17
// and 15 into 18: the target's receive functions read the older source's
// binary forms.
func TestBinaryStreamCrossVersion(t *testing.T) {
	for _, p := range [][2]int{{14, 17}, {15, 18}} {
		t.Run(fmt.Sprintf("%d-%d", p[0], p[1]), func(t *testing.T) { runBinaryFixture(t, p[0], p[1]) })
	}
}

// TestBinaryStreamUserTypes: a linked table with an enum, a domain and a
// composite column makes the session stream in text with --binary auto,
// and the default (off) does too for built-in types only.
func TestBinaryStreamUserTypes(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("shop")
	execFile(t, src, "shop", "testdata/fixture.sql")
	src.CreateDB("plain")
	src.Exec("plain", `CREATE TABLE t (id int PRIMARY KEY, v text)`, `INSERT INTO t VALUES (1, 'a')`)

	l, log := loggedLink(t, Config{Name: "usertypes", Source: src.URL("shop"), Target: dst.URL("shop_copy"), Binary: BinaryAuto})
	waitPhase(t, l, "replicating", 2*time.Minute)
	waitFormat(t, l, src, "shop", formatText)
	if !strings.Contains(log.String(), "user-defined type") {
		t.Errorf("the log does not say why the session streams in text")
	}
	execFile(t, src, "shop", "testdata/changes.sql")
	waitCaughtUp(t, l, src, "shop", time.Minute)
	assertSame(t, src, dst, "shop", "shop_copy")
	l.stop()

	off, _ := loggedLink(t, Config{Name: "off", Source: src.URL("plain"), Target: dst.URL("plain_copy")})
	waitPhase(t, off, "replicating", 2*time.Minute)
	waitFormat(t, off, src, "plain", formatText)
	src.Exec("plain", `INSERT INTO t VALUES (2, 'b')`)
	waitCaughtUp(t, off, src, "plain", time.Minute)
	assertSame(t, src, dst, "plain", "plain_copy")
}

// TestBinaryStreamFallsBackToText adds a column of an enum to a linked
// table while the link streams in binary, and writes with it: the apply
// stops on the first binary value of the enum before applying it, and the
// link streams on in text from the last applied position, once, without
// losing or repeating a change.
func TestBinaryStreamFallsBackToText(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{Version: 16})
	dst := pgtest.Start(t, pgtest.Options{Version: 16})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id int PRIMARY KEY, v text, n numeric)`,
		`INSERT INTO public.t SELECT g, 'seeded ' || g, g FROM generate_series(1, 500) g`)
	dst.CreateDB("app")
	dst.Exec("app", `CREATE TABLE public.t (id int PRIMARY KEY, v text, n numeric)`)
	l, log := loggedLink(t, Config{Name: "fallback", Source: src.URL("app"), Target: dst.URL("app"), Schema: SchemaExisting, Binary: BinaryAuto})
	waitPhase(t, l, "replicating", 2*time.Minute)
	waitFormat(t, l, src, "app", formatBinary)
	src.Exec("app", `UPDATE public.t SET n = n * 2 WHERE id % 2 = 0`, `INSERT INTO public.t VALUES (1000, 'binary', 1)`)
	waitCaughtUp(t, l, src, "app", time.Minute)

	src.Exec("app", `CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy')`,
		`ALTER TABLE public.t ADD COLUMN m public.mood`,
		`BEGIN; INSERT INTO public.t VALUES (1001, 'before', 2, NULL); UPDATE public.t SET m = 'happy' WHERE id <= 10;
		 INSERT INTO public.t SELECT g, 'mood ' || g, g, 'ok' FROM generate_series(2000, 2100) g; COMMIT`,
		`UPDATE public.t SET m = 'sad', v = v || '!' WHERE id BETWEEN 2000 AND 2050`,
		`DELETE FROM public.t WHERE id BETWEEN 2090 AND 2100`)
	waitCaughtUp(t, l, src, "app", 2*time.Minute)
	waitFormat(t, l, src, "app", formatText)
	assertSame(t, src, dst, "app", "app")
	if got := dst.QueryString("app", `SELECT count(*) FILTER (WHERE m = 'happy') || ' ' || count(*) FILTER (WHERE m = 'sad') || ' ' || count(*) FROM public.t`); got != "10 51 592" {
		t.Errorf("target rows (happy, sad, all) = %s, want 10 51 592", got)
	}
	if !strings.Contains(log.String(), "streaming in text from now on") {
		t.Errorf("the log does not say that the link fell back to text")
	}
	src.Exec("app", `UPDATE public.t SET m = 'ok' WHERE id = 1`)
	waitCaughtUp(t, l, src, "app", time.Minute)
	assertSame(t, src, dst, "app", "app")
	if n := l.cfg.Live.Snapshot().Reconnects; n != 1 {
		t.Errorf("%d reconnections, want 1 (the fallback to text)", n)
	}
	if strings.Count(log.String(), "replication started") != 2 {
		t.Errorf("%d replication sessions, want 2", strings.Count(log.String(), "replication started"))
	}
}
