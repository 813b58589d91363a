package link

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/quote"
	"github.com/pglink/pglink/internal/state"
)

// silentWST is the source's wal_sender_timeout in the tests of silent
// networks; a link must recover from any fault within it and 10 s.
const silentWST = 5 * time.Second

// shortControlTimeout makes the control queries give up sooner, as a
// target has no wal_sender_timeout to go by.
func shortControlTimeout(t *testing.T) {
	old := state.ControlTimeout
	state.ControlTimeout = 4 * time.Second
	t.Cleanup(func() { state.ControlTimeout = old })
}

// logBuffer keeps a link's log for the test to read, and shows it too.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func capturedLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(io.MultiWriter(pgtest.LogTo(t), b), &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// recoverWithin writes on the source and waits until the target has it,
// within the bound a fault may cost.
func recoverWithin(t *testing.T, l *testLink, src *pgtest.Cluster, what string, bound time.Duration) {
	t.Helper()
	start := time.Now()
	src.Exec("app", fmt.Sprintf(`INSERT INTO public.t SELECT g, %s FROM generate_series((SELECT max(id) + 1 FROM public.t), (SELECT max(id) + 100 FROM public.t)) g`, quote.Literal(what)),
		fmt.Sprintf(`UPDATE public.t SET v = %s WHERE id %% 7 = 0`, quote.Literal(what)))
	waitCaughtUp(t, l, src, "app", bound)
	t.Logf("%s: caught up after %s", what, time.Since(start).Round(time.Millisecond))
}

// TestSilentNetworkStreaming runs a streaming link through faults of the
// network on each side (latency, resets, black holes that lift and that
// never lift for the connections open): it must recover by itself each
// time within the source's wal_sender_timeout and 10 s, say which side
// went silent, and lose nothing.
func TestSilentNetworkStreaming(t *testing.T) {
	shortControlTimeout(t)
	src := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_sender_timeout": "5s"}})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id int PRIMARY KEY, v text)`,
		`INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 1000) g`)
	srcNet, dstNet := pgtest.NewProxy(t, src), pgtest.NewProxy(t, dst)
	log, logs := capturedLogger(t)
	l := startTestLink(t, Config{Name: "app", Source: srcNet.URL("app"), Target: dstNet.URL("app"), Logger: log})
	waitPhase(t, l, "replicating", time.Minute)
	bound := silentWST + 10*time.Second

	srcNet.SetLatency(20 * time.Millisecond)
	dstNet.SetLatency(20 * time.Millisecond)
	recoverWithin(t, l, src, "latency", bound)
	srcNet.SetLatency(0)
	dstNet.SetLatency(0)

	srcNet.Reset()
	recoverWithin(t, l, src, "source reset", bound)

	srcNet.BlackholeOpen()
	recoverWithin(t, l, src, "source black hole for the open connections", bound)
	if !contains(logs.String(), "side=source", "heard nothing from the server") {
		t.Errorf("the log does not name the silent source")
	}

	// A black hole for every connection: the link can only say so until
	// it lifts.
	waitFor(t, "the link healthy again", bound, l, func() (bool, error) {
		return linkStatus(t, "app", dst.URL("app"), "").LastError == "", nil
	})
	srcNet.Blackhole()
	waitFor(t, "the silent source in the link's status", bound, l, func() (bool, error) {
		st := linkStatus(t, "app", dst.URL("app"), "")
		return strings.HasPrefix(st.LastError, "source: ") && contains(st.LastError, "heard nothing", "since"), nil
	})
	if st := linkStatus(t, "app", dst.URL("app"), ""); st.LagBytes != nil || st.Phase != "replicating" {
		t.Errorf("status while the source is silent: phase %s, lag_bytes %v, want replicating and unknown (null)", st.Phase, st.LagBytes)
	}
	time.Sleep(silentWST) // the link tries to connect meanwhile
	srcNet.Lift()
	recoverWithin(t, l, src, "source black hole lifted", bound)
	// Each source fault came after a session that worked: the backoff
	// starts again at 1 s each time.
	for _, line := range strings.Split(logs.String(), "\n") {
		if contains(line, "replication interrupted", "side=source") && !strings.HasSuffix(line, " in=1s") {
			t.Errorf("backoff not started anew after a healthy session: %s", line)
		}
	}

	dstNet.BlackholeOpen()
	recoverWithin(t, l, src, "target black hole for the open connections", bound)
	if !contains(logs.String(), "side=target") {
		t.Errorf("the log does not name the silent target")
	}
	dstNet.Reset()
	recoverWithin(t, l, src, "target reset", bound)

	assertSame(t, src, dst, "app", "app")
	if err := l.failed(); err != nil {
		t.Fatalf("link stopped: %v", err)
	}
}
