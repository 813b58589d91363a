package seed

import (
	"context"
	"regexp"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/pglink/pglink/internal/catalog"
)

// EarlyBuilds builds a table's indexes and key constraints as soon as its
// copy is committed, while the other tables still copy, instead of after
// the last one: the builds of the smaller tables then take no time of
// their own. Only the statements PostData would run first and side by
// side (buildsAlone) of an ordinary table are built early; a partitioned
// table's, and everything that depends on a build (foreign keys,
// triggers, replica identities, ...), wait for PostData, which skips what
// was built early.
type EarlyBuilds struct {
	ctx     context.Context
	o       SchemaOptions
	ready   chan struct{} // closed once byTable is known
	byTable map[string][]statement
	preamb  []statement
	work    chan statement
	g       *errgroup.Group
	skipped skipList
	mu      sync.Mutex
	built   map[string]bool // SQL of the statements run
	queued  map[string]bool // tables whose builds are queued
	left    int             // tables whose copy is not committed yet
	closed  bool
	// enqueuers are the goroutines of TableCopied that wait for the dump
	// to queue their table's builds.
	enqueuers sync.WaitGroup
}

// StartEarlyBuilds starts sessions target sessions that build the
// post-data statements of the tables TableCopied names, tables of them in
// all. o.Dumped must hold the post-data section (DumpAhead).
func StartEarlyBuilds(ctx context.Context, o SchemaOptions, sessions, tables int) *EarlyBuilds {
	g, gctx := errgroup.WithContext(ctx)
	e := &EarlyBuilds{ctx: gctx, o: o, ready: make(chan struct{}), work: make(chan statement, 1024), g: g,
		built: map[string]bool{}, queued: map[string]bool{}, left: tables}
	g.Go(func() error {
		defer close(e.ready)
		stmts, _, conn, err := targetSection(gctx, o, "post-data")
		if err != nil {
			return err
		}
		conn.Close(context.WithoutCancel(gctx))
		preamble, parallel, _ := splitPostData(stmts)
		e.preamb = preamble
		e.byTable = map[string][]statement{}
		for _, s := range parallel {
			if t, ok := builtTable(s); ok {
				e.byTable[t] = append(e.byTable[t], s)
			}
		}
		return nil
	})
	for range max(sessions, 1) {
		g.Go(func() error { return e.session(gctx, sessions) })
	}
	return e
}

func (e *EarlyBuilds) session(ctx context.Context, sessions int) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for {
		var s statement
		var ok bool
		select {
		case s, ok = <-e.work:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			return nil
		}
		if e.isClosed() {
			continue // left to PostData, which has more sessions
		}
		if conn == nil {
			var err error
			if conn, err = connectTarget(ctx, e.o.Target); err != nil {
				return err
			}
			if err := setBuildMemory(ctx, conn, sessions); err != nil {
				return err
			}
			for _, p := range e.preamb {
				if err := execStatement(ctx, conn.PgConn(), p); err != nil {
					return err
				}
			}
		}
		if err := runTolerant(ctx, conn.PgConn(), s, &e.skipped); err != nil {
			return err
		}
		e.mu.Lock()
		e.built[s.SQL] = true
		e.mu.Unlock()
	}
}

// TableCopied queues the builds of t, whose copy is committed, once the
// post-data section's dump is there; it does not wait for it. The last
// table's builds are left to PostData: no copy is left for them to run
// beside, and PostData builds them on more sessions.
func (e *EarlyBuilds) TableCopied(t catalog.Table) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.left--
	key := tableKey(t.Schema, t.Name)
	if t.Partitioned || e.left <= 0 || e.closed || e.queued[key] {
		return
	}
	e.queued[key] = true
	e.enqueuers.Add(1)
	go func() {
		defer e.enqueuers.Done()
		select {
		case <-e.ready:
		case <-e.ctx.Done():
			return
		}
		for _, s := range e.byTable[key] {
			if e.isClosed() {
				return
			}
			select {
			case e.work <- s:
			case <-e.ctx.Done():
				return
			}
		}
	}()
}

func (e *EarlyBuilds) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// Finish waits for the builds under way, leaves those not begun to
// PostData (whose sessions build them side by side), and returns the
// statements built early, for PostData to skip (SchemaOptions.Built).
func (e *EarlyBuilds) Finish() (map[string]bool, error) {
	e.mu.Lock()
	first := !e.closed
	e.closed = true
	e.mu.Unlock()
	if first {
		e.enqueuers.Wait()
		close(e.work)
	}
	err := e.g.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.built, err
}

var (
	indexTableRE = regexp.MustCompile(`(?is)^CREATE\s+(?:UNIQUE\s+)?INDEX\s+` + sqlNamePat + `\s+ON\s+(ONLY\s+)?`)
	alterTableRE = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+(ONLY\s+)?`)
)

// builtTable names the table a build statement (see buildsAlone) builds
// on, as tableKey does, when it is a plain reference to one.
func builtTable(s statement) (string, bool) {
	var m []int
	if s.Type == "INDEX" {
		m = indexTableRE.FindStringSubmatchIndex(s.SQL)
	} else {
		m = alterTableRE.FindStringSubmatchIndex(s.SQL)
	}
	if m == nil {
		return "", false
	}
	schema, rest, ok := scanIdent(s.SQL[m[1]:])
	if !ok || !strings.HasPrefix(rest, ".") {
		return "", false
	}
	name, _, ok := scanIdent(rest[1:])
	if !ok {
		return "", false
	}
	return tableKey(schema, name), true
}

func tableKey(schema, name string) string { return schema + "\x00" + name }

// scanIdent reads one SQL identifier at the start of s: quoted (with ""
// for a quote) or not (folded to lower case, as PostgreSQL does).
func scanIdent(s string) (ident, rest string, ok bool) {
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '"' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			return b.String(), s[i+1:], b.Len() > 0
		}
		return "", s, false
	}
	i := 0
	for i < len(s) && (s[i] == '_' || s[i] == '$' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9' || s[i] >= 0x80) {
		i++
	}
	return strings.ToLower(s[:i]), s[i:], i > 0
}
