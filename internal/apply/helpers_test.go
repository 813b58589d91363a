package apply

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/pgtest"
)

// env is one test database on the shared cluster, with an apply session
// prepared as the link prepares it.
type env struct {
	c    *pgtest.Cluster
	db   string // also the replication origin's name: origins are cluster-wide
	conn *pgx.Conn
}

var dbNameChars = regexp.MustCompile(`[^a-z0-9]+`)

// dbName is the test's database name.
func dbName(t testing.TB) string { return dbNameChars.ReplaceAllString(strings.ToLower(t.Name()), "_") }

func newEnv(t *testing.T, c *pgtest.Cluster, setup ...string) *env {
	t.Helper()
	db := dbName(t)
	c.CreateDB(db)
	if len(setup) > 0 {
		c.Exec(db, setup...)
	}
	e := &env{c: c, db: db}
	e.conn = e.session(t)
	return e
}

// session opens a new apply session with the origin created.
func (e *env) session(t testing.TB) *pgx.Conn {
	t.Helper()
	conn := e.c.Connect(e.db)
	ctx := context.Background()
	if err := PrepareSession(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if err := EnsureOrigin(ctx, conn, e.db); err != nil {
		t.Fatal(err)
	}
	return conn
}

// withSecond returns opts with a second apply session (lanes.go), bound
// to the origin e.db + "_2".
func (e *env) withSecond(t testing.TB, opts Options) Options {
	t.Helper()
	conn := e.c.Connect(e.db)
	ctx := context.Background()
	if err := PrepareSession(ctx, conn); err != nil {
		t.Fatal(err)
	}
	opts.Second, opts.SecondOrigin = conn, e.db+"_2"
	if err := EnsureOrigin(ctx, conn, opts.SecondOrigin); err != nil {
		t.Fatal(err)
	}
	return opts
}

// run applies txns on a fresh Applier through a channel that holds them
// all (a backlog) and is then closed.
func (e *env) run(t testing.TB, opts Options, txns ...[]*change.Change) (*Applier, error) {
	t.Helper()
	n := 0
	for _, tx := range txns {
		n += len(tx)
	}
	in := make(chan *change.Change, n)
	for _, tx := range txns {
		for _, c := range tx {
			in <- c
		}
	}
	close(in)
	return e.runInput(opts, in)
}

// mustRunTrickled is mustRun with the input fed as a stream that runs dry
// now and then: after the changes for which pause returns true, the
// feeder sleeps a millisecond, so the apply finds the input empty there.
func (e *env) mustRunTrickled(t testing.TB, opts Options, pause func(n int) bool, txns ...[]*change.Change) *Applier {
	t.Helper()
	in := make(chan *change.Change)
	go func() {
		defer close(in)
		n := 0
		for _, tx := range txns {
			for _, c := range tx {
				in <- c
				if n++; pause(n) {
					time.Sleep(time.Millisecond)
				}
			}
		}
	}()
	a, err := e.runInput(opts, in)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return a
}

// runInput runs an Applier with opts (the env's session and origin unless
// set) on in until in is closed.
func (e *env) runInput(opts Options, in chan *change.Change) (*Applier, error) {
	if opts.Conn == nil {
		opts.Conn = e.conn
	}
	if opts.Origin == "" {
		opts.Origin = e.db
	}
	a := New(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return a, a.Run(ctx, in)
}

// mustRun is run that fails the test on an error.
func (e *env) mustRun(t testing.TB, opts Options, txns ...[]*change.Change) *Applier {
	t.Helper()
	a, err := e.run(t, opts, txns...)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return a
}

func (e *env) query(t testing.TB, sql string) string {
	t.Helper()
	return e.c.QueryString(e.db, sql)
}

func (e *env) expect(t testing.TB, sql, want string) {
	t.Helper()
	if got := e.query(t, sql); got != want {
		t.Errorf("%s\n got: %s\nwant: %s", sql, got, want)
	}
}

func (e *env) originLSN(t testing.TB) change.LSN {
	t.Helper()
	lsn, err := OriginProgress(context.Background(), e.c.Connect(e.db), e.db, e.db+"_2")
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// rel makes a relation; a column name ending in * is part of the key.
func rel(schema, name string, identity byte, cols ...string) *change.Relation {
	r := &change.Relation{ID: 1, Schema: schema, Name: name, ReplicaIdentity: identity}
	for _, c := range cols {
		key := strings.HasSuffix(c, "*")
		r.Columns = append(r.Columns, change.Column{Name: strings.TrimSuffix(c, "*"), Key: key || identity == change.IdentityFull})
	}
	return r
}

// unchanged stands for an unchanged TOASTed value in tup.
type unchangedValue struct{}

var unchanged unchangedValue

// tup makes a tuple: a string is a text value, nil is NULL.
func tup(vals ...any) change.Tuple {
	out := make(change.Tuple, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			out[i] = change.Value{Kind: change.ValueNull}
		case unchangedValue:
			out[i] = change.Value{Kind: change.ValueUnchanged}
		case string:
			out[i] = change.Value{Kind: change.ValueText, Data: []byte(v)}
		default:
			panic("tup: unsupported value")
		}
	}
	return out
}

func ins(r *change.Relation, vals ...any) *change.Change {
	return &change.Change{Kind: change.Insert, Rel: r, New: tup(vals...)}
}

func upd(r *change.Relation, old change.Tuple, vals ...any) *change.Change {
	return &change.Change{Kind: change.Update, Rel: r, Old: old, New: tup(vals...)}
}

func del(r *change.Relation, vals ...any) *change.Change {
	return &change.Change{Kind: change.Delete, Rel: r, Old: tup(vals...)}
}

func trunc(cascade, restart bool, rels ...*change.Relation) *change.Change {
	return &change.Change{Kind: change.Truncate, Truncated: rels, Cascade: cascade, RestartIdentity: restart}
}

var baseTime = time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)

// txn wraps changes in a source transaction that commits at lsn and ends
// 0x10 bytes later.
func txn(lsn change.LSN, changes ...*change.Change) []*change.Change {
	at := baseTime.Add(time.Duration(lsn) * time.Microsecond)
	out := []*change.Change{{Kind: change.Begin, CommitLSN: lsn, CommitTime: at}}
	for _, c := range changes {
		c.CommitLSN = lsn
		out = append(out, c)
	}
	return append(out, &change.Change{Kind: change.Commit, CommitLSN: lsn, EndLSN: lsn + 0x10, CommitTime: at})
}
