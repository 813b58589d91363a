package link

import (
	"context"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/seed"
	"github.com/pglink/pglink/internal/status"
)

// TestSilentNetworkSeeding makes each side's network go silent for the
// connections open in the middle of a table's copy: the copy is given up
// when nothing moves, the sessions the silence left are ended, and the
// seeding starts again by itself and ends with the same rows on both sides.
func TestSilentNetworkSeeding(t *testing.T) {
	shortControlTimeout(t)
	old := seed.DefaultStallTimeout
	seed.DefaultStallTimeout = 3 * time.Second
	t.Cleanup(func() { seed.DefaultStallTimeout = old })
	src := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_sender_timeout": "5s"}})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id int PRIMARY KEY, v text)`,
		`INSERT INTO public.t SELECT g, repeat('v', 100) || g FROM generate_series(1, 60000) g`)
	srcNet, dstNet := pgtest.NewProxy(t, src), pgtest.NewProxy(t, dst)
	srcNet.SetLatency(10 * time.Millisecond)
	dstNet.SetLatency(10 * time.Millisecond)
	for _, c := range []struct {
		name string
		net  *pgtest.Proxy
	}{{"source", srcNet}, {"target", dstNet}} {
		log, logs := capturedLogger(t)
		cfg := Config{Name: "silent_" + c.name, Source: srcNet.URL("app"), Target: dstNet.URL("app_" + c.name), Logger: log, Jobs: 1}
		l := startTestLink(t, cfg)
		waitFor(t, "the copy under way", time.Minute, l, func() (bool, error) {
			st, err := status.Read(context.Background(), cfg.Name, dst.URL("app_"+c.name), "")
			return err == nil && len(st.Tables) == 1 && st.Tables[0].BytesCopied > 0, nil
		})
		start := time.Now()
		c.net.BlackholeOpen()
		waitPhase(t, l, "replicating", 2*time.Minute)
		t.Logf("%s silent during the copy: replicating %s later", c.name, time.Since(start).Round(time.Millisecond))
		if !contains(logs.String(), "side="+c.name) {
			t.Errorf("the log does not name the silent %s", c.name)
		}
		assertSame(t, src, dst, "app", "app_"+c.name)
		if err := l.stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		c.net.Reset()
	}
}
