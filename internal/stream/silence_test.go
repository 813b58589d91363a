package stream

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestSilentSource puts the replication connection in a black hole: the
// streamer must give it up, as lost, within the source's
// wal_sender_timeout and a margin. Before, an idle source that answers
// the stream's replies (it sends nothing on its own while pglink reports
// in time) must not be taken for a silent one.
func TestSilentSource(t *testing.T) {
	src := newSourceWith(t, map[string]string{"wal_sender_timeout": "2s"}, "CREATE TABLE t (id int PRIMARY KEY)")
	src.createSlot("s")
	proxy := pgtest.NewProxy(t, src.Cluster)
	cfg, err := pgconn.ParseConfig(proxy.URL(srcDB))
	if err != nil {
		t.Fatal(err)
	}
	r := src.stream("s", 16, func(o *Options) { o.Conn = cfg; o.StatusInterval = 500 * time.Millisecond })
	src.Exec(srcDB, "INSERT INTO t VALUES (1)")
	r.txn(t)
	select {
	case err := <-r.errc:
		r.errc <- err
		t.Fatalf("the stream of an idle, live source ended: %v", err)
	case <-time.After(2 * (2*time.Second + silenceMargin)):
	}
	proxy.Blackhole()
	start := time.Now()
	select {
	case err := <-r.errc:
		r.errc <- nil
		var silent *endpoint.SilentError
		if !errors.As(err, &silent) || !endpoint.IsConnectionLost(err) || silent.Side != endpoint.Source {
			t.Fatalf("the stream ended with %v, want a silent source", err)
		}
		if took := time.Since(start); took > 2*time.Second+silenceMargin+2*time.Second {
			t.Errorf("the silence was noticed after %s", took)
		}
		t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(30 * time.Second):
		proxy.Lift()
		t.Fatal("the stream still waits on a silent source after 30s")
	}
}
