package serve

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pglink/pglink/internal/compare"
	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/status"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.RemovePglinkBinary()
	os.Exit(code)
}

const schemaSQL = `CREATE TABLE items (id bigint PRIMARY KEY, note text, n int)`

// fillDB makes db on c with the test table and some rows.
func fillDB(c *pgtest.Cluster, db string, rows int) {
	c.CreateDB(db)
	c.Exec(db, schemaSQL, fmt.Sprintf(`INSERT INTO items SELECT g, 'row '||g, g FROM generate_series(1, %d) g`, rows))
}

// write inserts, updates and deletes rows in db.
func write(c *pgtest.Cluster, db string, from int) {
	c.Exec(db, fmt.Sprintf(`INSERT INTO items SELECT g, 'new '||g, g FROM generate_series(%d, %d) g`, from, from+99),
		fmt.Sprintf(`UPDATE items SET n = n + 1 WHERE id BETWEEN %d AND %d`, from, from+9),
		fmt.Sprintf(`DELETE FROM items WHERE id BETWEEN %d AND %d`, from+90, from+99))
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func linkYAML(name, source, target string) string {
	return fmt.Sprintf("  - name: %s\n    source: %s\n    target: %s\n    jobs: 2\n    apply-sessions: 1\n", name, source, target)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(pgtest.LogTo(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("wait for %s: still not there after %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// liveOf returns link name's live view in srv.
func liveOf(srv *Server, name string) (report.Live, bool) {
	for _, l := range srv.Links() {
		if l.Name == name {
			return l, true
		}
	}
	return report.Live{}, false
}

// waitCaughtUp waits until link name has applied everything the source
// database had written when it was called.
func waitCaughtUp(t *testing.T, name, target string, src *pgtest.Cluster, srcDB string) {
	t.Helper()
	lsn := src.QueryString(srcDB, "pg_current_wal_insert_lsn()")
	want := state.ParseLSN(&lsn)
	waitUntil(t, name+" to apply up to "+lsn, time.Minute, func() bool {
		st, err := status.Read(context.Background(), name, target, "")
		return err == nil && st.AppliedLSN != "" && state.ParseLSN(&st.AppliedLSN) >= want
	})
}

// assertSame compares the two databases row by row.
func assertSame(t *testing.T, src, dst *pgtest.Cluster, srcDB, dstDB string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := compare.Databases(ctx, src.Connect(srcDB), dst.Connect(dstDB))
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	if !res.Equal() || res.Rows == 0 {
		t.Fatalf("source %s and target %s differ (or are empty):\n%s", srcDB, dstDB, res.String())
	}
}

// get fetches url with the bearer token (when set) and returns the status
// code and body.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape reads /metrics with Prometheus' own text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, "http://"+addr+"/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics answered %d: %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// metric returns the value of family name for the series whose labels
// include labels (name=value pairs), and whether there is one.
func metric(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func tempFile(t *testing.T, name string) string { return filepath.Join(t.TempDir(), name) }

func dialable(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
	}
	return err == nil
}
