package serve

import (
	"context"
	"strings"
	"testing"
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
