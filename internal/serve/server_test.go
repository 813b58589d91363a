package serve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

func TestListenNeedsToken(t *testing.T) {
	for _, tc := range []struct {
		listen, token string
		ok            bool
	}{
		{"127.0.0.1:9187", "", true},
		{"[::1]:9187", "", true},
		{"localhost:9187", "", true},
		{"0.0.0.0:9187", "", false},
		{":9187", "", false},
		{"10.1.2.3:9187", "", false},
		{"0.0.0.0:9187", "secret", true},
		{"9187", "", false},
	} {
		err := CheckListen(tc.listen, tc.token)
		if (err == nil) != tc.ok {
			t.Errorf("CheckListen(%q, %q) = %v", tc.listen, tc.token, err)
		}
	}
	cfg := tempFile(t, "links.yaml")
	writeConfig(t, cfg, "links: []\n")
	if _, err := Start(context.Background(), Options{ConfigPath: cfg, Listen: "0.0.0.0:0"}); err == nil || !strings.Contains(err.Error(), "--token") {
		t.Fatalf("serve on all addresses without a token: %v", err)
	}
}

// TestToken checks that every endpoint wants the token when one is set.
func TestToken(t *testing.T) {
	cfg := tempFile(t, "links.yaml")
	writeConfig(t, cfg, "links: []\n")
	ctx := context.Background()
	srv, err := Start(ctx, Options{ConfigPath: cfg, Listen: "127.0.0.1:0", Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(ctx)
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		url := "http://" + srv.Addr() + path
		if code, _ := get(t, url, ""); code != 401 {
			t.Errorf("%s without the token: %d, want 401", path, code)
		}
		if code, _ := get(t, url, "wrong"); code != 401 {
			t.Errorf("%s with a wrong token: %d, want 401", path, code)
		}
		if code, body := get(t, url, "s3cret"); code != 200 {
			t.Errorf("%s with the token: %d %s", path, code, body)
		}
	}
}

// TestBadConfigStartsNothing checks that a file with a mistake stops
// serve before it listens.
func TestBadConfigStartsNothing(t *testing.T) {
	cfg := tempFile(t, "links.yaml")
	writeConfig(t, cfg, "links:\n  - name: a\n    source: postgres://a@h/db\n    target: postgres://b@h/db\n  - name: a\n    source: postgres://a@h/db\n    target: postgres://b@h/db\n")
	addr := freeAddr(t)
	_, err := Start(context.Background(), Options{ConfigPath: cfg, Listen: addr})
	if err == nil || !strings.Contains(err.Error(), cfg+":5:") {
		t.Fatalf("Start with a duplicate name: %v", err)
	}
	if code := dialable(addr); code {
		t.Fatal("serve listens although its file has a mistake")
	}
}

// TestReadyAndNoSecrets checks that /readyz names a link that cannot run,
// and that no answer shows its password.
func TestReadyAndNoSecrets(t *testing.T) {
	cfg := tempFile(t, "links.yaml")
	nowhere := freeAddr(t) // nothing listens there
	writeConfig(t, cfg, "links:\n  - name: gone\n    source: postgres://u:${PW}@"+nowhere+"/db\n    target: postgres://u:${PW}@"+nowhere+"/db2\n")
	t.Setenv("PW", "pw-9x7")
	var logs syncBuffer
	ctx := context.Background()
	srv, err := Start(ctx, Options{ConfigPath: cfg, Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(ctx)
	waitUntil(t, "the link to fail", 30*time.Second, func() bool {
		l, _ := liveOf(srv, "gone")
		return l.State == "retrying"
	})
	code, body := get(t, "http://"+srv.Addr()+"/readyz", "")
	if code != 503 || !strings.Contains(body, "gone: retrying") {
		t.Errorf("/readyz: %d %q", code, body)
	}
	_, metrics := get(t, "http://"+srv.Addr()+"/metrics", "")
	if !strings.Contains(metrics, `pglink_errors_total{link="gone"} `) || strings.Contains(metrics, `pglink_errors_total{link="gone"} 0`) ||
		!strings.Contains(metrics, `source="u@127.0.0.1:`) {
		t.Errorf("/metrics does not count the error or show the source:\n%s", metrics)
	}
	for what, s := range map[string]string{"readyz": body, "metrics": metrics, "log": logs.String()} {
		if strings.Contains(s, "pw-9x7") {
			t.Errorf("%s shows the password", what)
		}
	}
}

// TestTLS serves HTTPS with a certificate of a test authority: a client
// that trusts it gets /healthz, a plain HTTP request gets no answer of
// the endpoint, and a certificate without its key is refused at start.
func TestTLS(t *testing.T) {
	ca := pgtest.NewCA(t, "dashboard")
	files := ca.Server(t, pgtest.Options{}).Files
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, files["server.crt"], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, files["server.key"], 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := tempFile(t, "links.yaml")
	writeConfig(t, cfg, "links: []\n")
	ctx := context.Background()
	if _, err := Start(ctx, Options{ConfigPath: cfg, Listen: "127.0.0.1:0", TLSCert: certFile}); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("a certificate without its key: %v", err)
	}
	srv, err := Start(ctx, Options{ConfigPath: cfg, Listen: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(ctx)
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + srv.Addr() + "/healthz")
	if err != nil {
		t.Fatalf("https: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("https /healthz: %d", resp.StatusCode)
	}
	if code, _ := get(t, "http://"+srv.Addr()+"/healthz", ""); code == 200 {
		t.Fatal("plain HTTP got an answer from the endpoint")
	}
}
