package link

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/pgtest"
)

// TestLinkOverTLS links two servers whose certificates a test authority
// signed, with sslmode=verify-full on both sides: every session of the link
// (pg_dump's, the copy's, the replication connection, the apply's) uses
// TLS, and the link seeds and streams. A connection string that trusts
// another authority is refused before anything is made, naming the side,
// the failed certificate check and the fix.
func TestLinkOverTLS(t *testing.T) {
	ca := pgtest.NewCA(t, "test-ca")
	src := pgtest.Start(t, ca.Server(t, pgtest.Options{Settings: map[string]string{"log_connections": "on"}}))
	dst := pgtest.Start(t, ca.Server(t, pgtest.Options{Version: 17}))
	src.CreateDB("shop")
	execFile(t, src, "shop", "testdata/fixture.sql")
	dst.CreateDB("shop_copy")
	tlsURL := func(c *pgtest.Cluster, db, rootCert string) string {
		return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=verify-full&sslrootcert=%s", c.Port, db, url.QueryEscape(rootCert))
	}
	source, target := tlsURL(src, "shop", ca.File), tlsURL(dst, "shop_copy", ca.File)

	other := pgtest.NewCA(t, "other-ca")
	for _, tc := range []struct {
		side           endpoint.Side
		source, target string
	}{
		{endpoint.Source, tlsURL(src, "shop", other.File), target},
		{endpoint.Target, source, tlsURL(dst, "shop_copy", other.File)},
	} {
		t.Run("wrong CA of the "+string(tc.side), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			want := []string{string(tc.side) + ": ", "TLS certificate", "cannot be verified", "sslrootcert"}
			err := Run(ctx, Config{Name: "tls", Source: tc.source, Target: tc.target})
			var ee *endpoint.Error
			if !errors.As(err, &ee) || ee.Side != tc.side || !contains(err.Error(), want...) {
				t.Fatalf("start: %v, want an error naming %q", err, want)
			}
			rep, err := assess.Run(ctx, assess.Options{Source: tc.source, Target: tc.target})
			if tc.side == endpoint.Source && (err == nil || !contains(err.Error(), want...)) {
				t.Errorf("assess: %v, want an error naming %q", err, want)
			}
			if tc.side == endpoint.Target {
				if err != nil {
					t.Fatalf("assess: %v", err)
				}
				if fs := findingsOf(rep.Findings, "reachable"); len(fs) != 1 || !contains(fs[0].What+" "+fs[0].Remedy, "TLS certificate", "sslrootcert") {
					t.Errorf("assess: findings %+v, want one naming the target's certificate", fs)
				}
			}
			if got := src.QueryString("shop", "SELECT count(*) FROM pg_replication_slots"); got != "0" {
				t.Errorf("the refused start left %s slots on the source", got)
			}
			if got := dst.QueryString("shop_copy", "SELECT count(*) FROM pg_namespace WHERE nspname IN ('pglink', 'shop')"); got != "0" {
				t.Errorf("the refused start left %s schemas on the target", got)
			}
		})
	}

	l := startTestLink(t, Config{Name: "tls", Source: source, Target: target})
	waitPhase(t, l, "replicating", 3*time.Minute)
	execFile(t, src, "shop", "testdata/changes.sql")
	waitCaughtUp(t, l, src, "shop", 2*time.Minute)

	// The test's own sessions do not use TLS (the comparison's come
	// after): every other one must.
	plain := `SELECT coalesce(string_agg(a.application_name || ' ' || a.backend_type, ', '), 'none') FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		WHERE a.client_addr IS NOT NULL AND a.pid <> pg_backend_pid() AND NOT s.ssl`
	if got := src.QueryString("shop", plain); got != "none" {
		t.Errorf("sessions of the link on the source without TLS: %s", got)
	}
	if got := dst.QueryString("shop_copy", plain); got != "none" {
		t.Errorf("sessions of the link on the target without TLS: %s", got)
	}
	if got := src.QueryString("shop", `SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		WHERE a.backend_type = 'walsender' AND s.ssl`); got != "1" {
		t.Errorf("%s replication connections over TLS on the source, want 1", got)
	}
	if got := dst.QueryString("shop_copy", `SELECT count(*) > 0 FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		WHERE a.datname = 'shop_copy' AND s.ssl`); got != "true" {
		t.Errorf("no session of the link over TLS on the target")
	}
	// pg_dump's sessions are gone: the server's log says how they came.
	log, err := os.ReadFile(filepath.Join(src.Dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	var dumps int
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "connection authorized") && strings.Contains(line, "application_name=pg_dump") {
			dumps++
			if !strings.Contains(line, "SSL enabled") {
				t.Errorf("pg_dump connected without TLS: %s", line)
			}
		}
	}
	if dumps == 0 {
		t.Errorf("no pg_dump connection in the source's log")
	}
	assertSame(t, src, dst, "shop", "shop_copy")
}
