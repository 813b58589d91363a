package stream

import (
	"context"
	"errors"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

const (
	srcDB    = "src"
	testPub  = "pub"
	waitTime = 60 * time.Second // bound of every wait on the server
)

// source is a test cluster with database srcDB, its tables and a
// publication of all tables. Its decoding memory is tiny so that any
// transaction of more than a few hundred rows is streamed while in progress.
type source struct {
	*pgtest.Cluster
	t *testing.T
}

func newSource(t *testing.T, setup ...string) *source {
	t.Helper()
	return newSourceWith(t, nil, setup...)
}

// newSourceWith is newSource with more server settings.
func newSourceWith(t *testing.T, settings map[string]string, setup ...string) *source {
	t.Helper()
	all := map[string]string{"logical_decoding_work_mem": "64kB"}
	maps.Copy(all, settings)
	c := pgtest.Start(t, pgtest.Options{Settings: all})
	c.CreateDB(srcDB)
	c.Exec(srcDB, setup...)
	c.Exec(srcDB, "CREATE PUBLICATION "+testPub+" FOR ALL TABLES")
	return &source{Cluster: c, t: t}
}

func (s *source) config() *pgconn.Config {
	s.t.Helper()
	cfg, err := pgconn.ParseConfig(s.URL(srcDB))
	if err != nil {
		s.t.Fatal(err)
	}
	return cfg
}

// replConn opens a replication=database connection, closed at the end.
func (s *source) replConn() *pgconn.PgConn {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, ReplicationConfig(s.config()))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (s *source) createSlot(name string) SlotInfo {
	s.t.Helper()
	info, err := CreateSlot(context.Background(), s.replConn(), name, false, false)
	if err != nil {
		s.t.Fatal(err)
	}
	return info
}

// lsnOf runs a query that returns one pg_lsn.
func (s *source) lsnOf(sql string, args ...any) change.LSN {
	s.t.Helper()
	v := s.QueryString(srcDB, sql, args...)
	if v == "NULL" {
		return 0
	}
	l, err := pglogrepl.ParseLSN(v)
	if err != nil {
		s.t.Fatalf("parse LSN %q: %v", v, err)
	}
	return l
}

func (s *source) confirmedFlush(slot string) change.LSN {
	return s.lsnOf("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1", slot)
}

// waitFor polls cond until it holds, failing the test after waitTime.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running is a Streamer running in the background for a test.
type running struct {
	*Streamer
	t        *testing.T
	out      chan *change.Change
	errc     chan error
	cancel   context.CancelFunc
	spoolDir string
}

// stream starts a Streamer on slot; it is stopped when the test ends.
func (s *source) stream(slot string, outCap int, tune func(*Options)) *running {
	s.t.Helper()
	opts := Options{Conn: s.config(), Slot: slot, Publication: testPub, SpoolDir: s.t.TempDir() + "/spool",
		StatusInterval: 100 * time.Millisecond}
	if tune != nil {
		tune(&opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Streamer: New(opts), t: s.t, out: make(chan *change.Change, outCap),
		errc: make(chan error, 1), cancel: cancel, spoolDir: opts.SpoolDir}
	go func() { r.errc <- r.Run(ctx, r.out) }()
	s.t.Cleanup(r.stop)
	return r
}

// stop ends the run and checks that it ended only because it was told to,
// returning ctx.Err() unwrapped as Run promises.
// It may be called more than once.
func (r *running) stop() {
	r.cancel()
	if err := <-r.errc; err != nil && err != context.Canceled { // Run returns ctx.Err() itself
		r.t.Errorf("streamer: %v", err)
	}
	r.errc <- nil // a later stop sees a finished run
}

// next returns the next change, failing the test when the streamer stops
// or nothing comes in time.
func (r *running) next(t *testing.T) *change.Change {
	t.Helper()
	select {
	case c := <-r.out:
		return c
	case err := <-r.errc:
		r.errc <- err
		t.Fatalf("streamer stopped: %v", err)
	case <-time.After(waitTime):
		t.Fatal("no change in time")
	}
	return nil
}

// txn reads one whole transaction, checks its framing (Begin first, Commit
// last, every change with the transaction's XID and CommitLSN) and returns
// the changes between Begin and Commit, and the Commit.
func (r *running) txn(t *testing.T) (body []*change.Change, commit *change.Change) {
	t.Helper()
	begin := r.next(t)
	if begin.Kind != change.Begin || begin.CommitLSN == 0 || begin.CommitTime.IsZero() {
		t.Fatalf("want a Begin with CommitLSN and time, got %+v", begin)
	}
	for {
		c := r.next(t)
		if c.XID != begin.XID || c.CommitLSN != begin.CommitLSN {
			t.Fatalf("%s: XID %d CommitLSN %s, want %d %s", c.Kind, c.XID, c.CommitLSN, begin.XID, begin.CommitLSN)
		}
		if c.Kind == change.Commit {
			if c.EndLSN <= c.CommitLSN || !c.CommitTime.Equal(begin.CommitTime) {
				t.Fatalf("bad Commit %+v for Begin %+v", c, begin)
			}
			return body, c
		}
		body = append(body, c)
	}
}

// spoolFiles lists what is left in the spool directory.
func (r *running) spoolFiles(t *testing.T) []string {
	entries, err := os.ReadDir(r.spoolDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// text returns a tuple's values as strings, "<null>" and "<unchanged>"
// for the value kinds that carry no data.
func text(tp change.Tuple) []string {
	if tp == nil {
		return nil
	}
	out := make([]string, len(tp))
	for i, v := range tp {
		switch v.Kind {
		case change.ValueNull:
			out[i] = "<null>"
		case change.ValueUnchanged:
			out[i] = "<unchanged>"
		default:
			out[i] = string(v.Data)
		}
	}
	return out
}
