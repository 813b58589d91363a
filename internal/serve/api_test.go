package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/web"
)

// withPassword puts a password into a test server's URL; the servers
// trust local connections, so it is sent and never needed.
func withPassword(url, pw string) string { return strings.Replace(url, "@", ":"+pw+"@", 1) }

// apiFixture is one link, shop, served from a source and a target server.
type apiFixture struct {
	t        *testing.T
	src, dst *pgtest.Cluster
	srv      *Server
	base     string
	cfg      string
}

func newAPIFixture(t *testing.T, pw string) *apiFixture {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	fillDB(src, "shop", 1000)
	cfg := tempFile(t, "links.yaml")
	writeConfig(t, cfg, "links:\n"+linkYAML("shop", withPassword(src.URL("shop"), pw), withPassword(dst.URL("shop"), pw)))
	oldEvery := web.LagEvery
	web.LagEvery = time.Second
	t.Cleanup(func() { web.LagEvery = oldEvery })
	ctx := context.Background()
	srv, err := Start(ctx, Options{ConfigPath: cfg, Listen: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(ctx) })
	f := &apiFixture{t: t, src: src, dst: dst, srv: srv, base: "http://" + srv.Addr(), cfg: cfg}
	waitUntil(t, "shop replicating", 2*time.Minute, func() bool {
		l, _ := liveOf(srv, "shop")
		return l.State == "replicating"
	})
	return f
}

// restart stops the fixture's pglink serve cleanly and starts another on
// the same file.
func (f *apiFixture) restart() {
	f.t.Helper()
	ctx := context.Background()
	f.srv.Close(ctx)
	srv, err := Start(ctx, Options{ConfigPath: f.cfg, Listen: "127.0.0.1:0", Logger: testLogger(f.t)})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { srv.Close(ctx) })
	f.srv, f.base = srv, "http://"+srv.Addr()
}

// getJSON fetches path and decodes its JSON answer into v.
func (f *apiFixture) getJSON(path string, v any) int {
	f.t.Helper()
	code, body := get(f.t, f.base+path, "")
	if err := json.Unmarshal([]byte(body), v); err != nil {
		f.t.Fatalf("GET %s: %d, not JSON: %v\n%s", path, code, err, body)
	}
	return code
}

// post sends body as JSON with the headers given as name, value pairs,
// and returns the status code and the answer.
func (f *apiFixture) post(path string, body any, headers ...string) (int, string) {
	f.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", f.base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	// A client of its own, closed after: as a browser that goes away.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		f.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

type apiLinks struct {
	Links []web.LinkView `json:"links"`
}

func (f *apiFixture) link(name string) web.LinkView {
	f.t.Helper()
	var ls apiLinks
	f.getJSON("/api/links", &ls)
	for _, l := range ls.Links {
		if l.Name == name {
			return l
		}
	}
	f.t.Fatalf("/api/links has no link %s: %+v", name, ls)
	return web.LinkView{}
}

// itemWriter inserts rows into items on the source, one per transaction,
// until it is refused, and remembers every id it saw committed.
type itemWriter struct {
	mu   sync.Mutex
	ids  []int64
	err  error
	done chan struct{}
}

func startItemWriter(t *testing.T, url string) *itemWriter {
	w := &itemWriter{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); <-w.done })
	go func() {
		defer close(w.done)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			w.setErr(err)
			return
		}
		defer conn.Close(context.Background())
		for id := int64(1_000_000); ; id++ {
			if _, err := conn.Exec(ctx, `INSERT INTO items VALUES ($1, 'load', 1)`, id); err != nil {
				w.setErr(err)
				return
			}
			w.mu.Lock()
			w.ids = append(w.ids, id)
			w.mu.Unlock()
		}
	}()
	waitUntil(t, "the writer under way", time.Minute, func() bool { return w.count() > 200 })
	return w
}

func (w *itemWriter) setErr(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

func (w *itemWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ids)
}

// assertWritesOnTarget checks that every row w saw committed is on the
// target database.
func (w *itemWriter) assertWritesOnTarget(t *testing.T, dst *pgtest.Cluster, db string) {
	t.Helper()
	<-w.done
	t.Logf("the writer committed %d rows, then: %v", w.count(), w.err)
	if w.err == nil || !strings.Contains(w.err.Error(), "read-only") && !strings.Contains(w.err.Error(), "terminat") && !strings.Contains(w.err.Error(), "fence") {
		t.Errorf("the writer should have been stopped by the fence, got %v", w.err)
	}
	n := dst.QueryString(db, fmt.Sprintf(`(SELECT count(*) FROM items WHERE id BETWEEN 1000000 AND %d)`, 1_000_000+w.count()-1))
	if n != strconv.Itoa(w.count()) {
		t.Errorf("%s of the %d rows the writer saw committed are on the target", n, w.count())
	}
}

// waitFailover polls the failover of link name until it has ended.
func (f *apiFixture) waitFailover(name string) web.FailoverView {
	f.t.Helper()
	var v web.FailoverView
	waitUntil(f.t, "the failover to end", 3*time.Minute, func() bool {
		if code := f.getJSON("/api/links/"+name+"/failover", &v); code != 200 {
			f.t.Fatalf("GET the failover: %d %+v", code, v)
		}
		return v.State != "running"
	})
	return v
}
