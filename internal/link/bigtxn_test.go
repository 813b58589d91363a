package link

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/status"
)

// TestMillionRowTransaction applies one source transaction of a million
// rows with pglink running as its own process, and checks its peak memory.
// The server streams the transaction before it commits (it exceeds
// logical_decoding_work_mem); pglink spools it to disk and applies it from
// there, so memory does not grow with the transaction.
func TestMillionRowTransaction(t *testing.T) {
	millionRowTransaction(t, 0)
}

// TestMillionRowTransactionProtocol1 is the same from a PostgreSQL 13
// source, which speaks protocol 1 only: it sends the transaction once it
// has committed, spilled to its own disk until then, never streamed.
func TestMillionRowTransactionProtocol1(t *testing.T) {
	millionRowTransaction(t, 13)
}

func millionRowTransaction(t *testing.T, srcVersion int) {
	if os.Getenv("PGLINK_SHORT") != "" {
		t.Skip("PGLINK_SHORT is set")
	}
	src := pgtest.Start(t, pgtest.Options{Version: srcVersion})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("big")
	src.Exec("big", `CREATE TABLE public.rows (id bigint PRIMARY KEY, v text, n numeric)`)
	p := startProcess(t, "big", src.URL("big"), dst.URL("big"))
	l := &testLink{t: t, cfg: Config{Name: "big", Target: dst.URL("big")}}
	waitFor(t, "replicating", time.Minute, nil, func() (bool, error) {
		var phase string
		err := execQueryString(dst, "big", `SELECT phase FROM pglink.links WHERE name = 'big'`, &phase)
		return err == nil && phase == "replicating", nil
	})
	src.Exec("big", `INSERT INTO public.rows SELECT g, md5(g::text), g * 1.5 FROM generate_series(1, 1000000) g`)
	waitCaughtUp(t, l, src, "big", 5*time.Minute)
	if got := dst.QueryString("big", "SELECT count(*) FROM public.rows"); got != "1000000" {
		// Say whether the rows come late (the applied position ran ahead
		// of the data) or never (the transaction was lost).
		st, _ := status.Read(context.Background(), "big", dst.URL("big"), "")
		applied := ""
		if st != nil {
			applied = st.AppliedLSN
		}
		late := "they never came within a minute"
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
			if dst.QueryString("big", "SELECT count(*) FROM public.rows") == "1000000" {
				late = "they came later"
				break
			}
		}
		t.Fatalf("target has %s rows, want 1000000 (source: %s), although its applied position %s is past the source's position after the commit; %s",
			got, src.QueryString("big", "SELECT count(*) FROM public.rows"), applied, late)
	}
	peak := p.peakRSS()
	t.Logf("peak RSS of pglink while applying a 1,000,000-row transaction: %d MB", peak>>20)
	if peak <= 0 || peak > 300<<20 {
		t.Errorf("peak RSS = %d MB, want under 300 MB", peak>>20)
	}
	assertSame(t, src, dst, "big", "big")
}
