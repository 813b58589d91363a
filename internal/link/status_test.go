package link

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/status"
)

// TestStatusDoesNotWait checks that a status answers quickly while other
// sessions hold locks: ACCESS EXCLUSIVE on a target table in an open
// transaction (what a seeding copy's TRUNCATE holds), and on pglink.tables
// (what a session changing pglink's state tables holds); and while the
// source takes connections but never answers. The bound is generous for a
// busy machine; the status typically answers well under 200 ms.
func TestStatusDoesNotWait(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.items (id int PRIMARY KEY, v text)`,
		`INSERT INTO public.items SELECT g, 'v' || g FROM generate_series(1, 1000) g`)
	l := startTestLink(t, Config{Name: "st", Source: src.URL("app"), Target: dst.URL("app")})
	waitPhase(t, l, "replicating", time.Minute)
	ctx := context.Background()
	locker := dst.Connect("app")
	defer locker.Close(ctx)
	for _, sql := range []string{`BEGIN`, `LOCK public.items IN ACCESS EXCLUSIVE MODE`, `LOCK pglink.tables IN ACCESS EXCLUSIVE MODE`} {
		if _, err := locker.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	timed := func(source string) (time.Duration, []string) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		begin := time.Now()
		st, err := status.Read(sctx, "st", dst.URL("app"), source)
		took := time.Since(begin)
		if err != nil {
			t.Fatalf("status after %s: %v", took, err)
		}
		if st.Phase != "replicating" {
			t.Errorf("status says phase %q, want replicating", st.Phase)
		}
		return took, st.Warnings
	}
	took, warnings := timed(src.URL("app"))
	t.Logf("status with the tables locked: %s", took)
	if took > 2*time.Second || !strings.Contains(strings.Join(warnings, ";"), "pglink.tables") {
		t.Errorf("status with the tables locked took %s, warnings %q; want under 2s and a warning naming pglink.tables", took, warnings)
	}

	// A source that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	silent := fmt.Sprintf("postgres://postgres@%s/app?sslmode=disable", ln.Addr())
	took, warnings = timed(silent)
	t.Logf("status with a silent source: %s", took)
	if took > 2*time.Second || !strings.Contains(strings.Join(warnings, ";"), "source: no answer") {
		t.Errorf("status with a silent source took %s, warnings %q; want under 2s and a warning that the source did not answer", took, warnings)
	}
}
