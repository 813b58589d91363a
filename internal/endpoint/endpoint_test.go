package endpoint

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/pgtest"
)

func TestParseErrorsHideSecrets(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "--source"},
		{"postgres://u:s3cret@host:notaport/db", "source: the connection string cannot be read"},
		{"host=h password=s3cret port=x", "source: the connection string cannot be read"},
	} {
		_, err := Parse(Source, tc.in)
		if err == nil {
			t.Fatalf("Parse(%q) = nil error", tc.in)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want it to mention %q", tc.in, err, tc.want)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Parse(%q) error shows the password: %v", tc.in, err)
		}
	}
}

func TestDescribeAndConnString(t *testing.T) {
	ep, err := Parse(Target, "postgres://app:s3cret@db.example:5433/shop?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ep.Describe(), "app@db.example:5433/shop"; got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
	if ep.ConnString() != "postgres://app:s3cret@db.example:5433/shop?sslmode=disable" {
		t.Errorf("ConnString() changed the user's string")
	}
	if other := ep.WithDatabase("postgres"); other.Database() != "postgres" || other.ConnString() != "" {
		t.Errorf("WithDatabase: database %q, conn string %q", other.Database(), other.ConnString())
	}
}

// TestExplain checks the messages of real connection failures: each names
// the side, says what went wrong, keeps the driver's own words for it and
// gives the fix, and never shows the password.
func TestExplain(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec("postgres", "CREATE ROLE app LOGIN PASSWORD 'right-pw'",
		"CREATE ROLE blocked LOGIN PASSWORD 'blocked-pw'",
		"CREATE ROLE one LOGIN PASSWORD 'one-pw' CONNECTION LIMIT 1")
	// pg_hba.conf's first matching line decides: these turn away the role
	// blocked, and let a role that does not exist past the password.
	hba := filepath.Join(c.Dir, "pg_hba.conf")
	b, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hba, append([]byte("host all blocked 127.0.0.1/32 reject\nhost all ghost 127.0.0.1/32 trust\n"), b...), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Exec("postgres", "SELECT pg_reload_conf()")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	held, err := pgx.Connect(ctx, fmt.Sprintf("postgres://one:one-pw@127.0.0.1:%d/postgres?sslmode=disable", c.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(ctx)
	silent := silentServer(t)
	at := func(userinfo, db, query string) string {
		return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?%s", userinfo, c.Port, db, query)
	}
	for _, tc := range []struct {
		name, url         string
		what, driver, fix string
		lost              bool // IsConnectionLost must say so
	}{
		{"TLS refused", at("app:right-pw", "postgres", "sslmode=require"),
			"does not accept TLS connections", "server refused TLS connection", "sslmode=prefer", false},
		{"connection refused", "postgres://postgres:pw-s3cret@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2",
			"cannot reach the server at 127.0.0.1:1: nothing listens there", "connection refused", "listen_addresses", true},
		{"timeout", fmt.Sprintf("postgres://postgres:pw-s3cret@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=1", silent),
			"no answer within the connect timeout (1s)", "timeout", "connect_timeout", true},
		{"unknown host", "postgres://postgres:pw-s3cret@nonexistent.invalid:5432/postgres?sslmode=disable&connect_timeout=5",
			`the host name "nonexistent.invalid" cannot be resolved`, "nonexistent.invalid", "check the host name", true},
		{"wrong password", at("app:wrong-s3cret", "postgres", "sslmode=disable"),
			`password authentication failed for user "app"`, "SQLSTATE 28P01", "PGPASSWORD", false},
		{"unknown user", at("ghost:ghost-s3cret", "postgres", "sslmode=disable"),
			`user "ghost" does not exist`, `role "ghost" does not exist`, "CREATE ROLE", false},
		{"unknown database", at("app:right-pw", "nosuchdb", "sslmode=disable"),
			`database "nosuchdb" does not exist`, "SQLSTATE 3D000", "create the database", false},
		{"pg_hba.conf", at("blocked:blocked-pw", "postgres", "sslmode=disable"),
			`pg_hba.conf refuses user "blocked", database "postgres"`, "pg_hba.conf rejects connection", "SELECT pg_reload_conf()", false},
		{"too many connections", at("one:one-pw", "postgres", "sslmode=disable"),
			"too many connections at one@127.0.0.1", "SQLSTATE 53300", "CONNECTION LIMIT", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, err := Parse(Source, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ep.Connect(ctx)
			if err == nil {
				t.Fatalf("connect %s succeeded", ep.Describe())
			}
			msg := err.Error()
			t.Log(msg)
			what, fix, ok := strings.Cut(msg, ". Fix: ")
			if !ok || !strings.HasPrefix(msg, "source: ") || !strings.Contains(what, tc.what) ||
				!strings.Contains(what, "the driver said: ") || !strings.Contains(what, tc.driver) || !strings.Contains(fix, tc.fix) {
				t.Errorf("error %q\nwant side source, %q, the driver's %q and a fix with %q", msg, tc.what, tc.driver, tc.fix)
			}
			if pw := ep.Config.Password; pw != "" && strings.Contains(msg, pw) {
				t.Errorf("error shows the password: %v", msg)
			}
			if got := IsConnectionLost(err); got != tc.lost {
				t.Errorf("IsConnectionLost = %v, want %v", got, tc.lost)
			}
		})
	}
}

// TestExplainCertificate: a server whose certificate the client cannot
// verify.
func TestExplainCertificate(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	dir := t.TempDir()
	serverCert, serverKey := selfSigned(t)
	otherCA, _ := selfSigned(t)
	writeServerFile(t, filepath.Join(c.Dir, "server.crt"), serverCert)
	writeServerFile(t, filepath.Join(c.Dir, "server.key"), serverKey)
	rootCert := filepath.Join(dir, "root.crt")
	if err := os.WriteFile(rootCert, otherCA, 0o644); err != nil {
		t.Fatal(err)
	}
	c.Exec("postgres", "ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := fmt.Sprintf("postgres://postgres:pw-s3cret@127.0.0.1:%d/postgres?sslmode=verify-ca&sslrootcert=%s", c.Port, rootCert)
	ep, err := Parse(Source, url)
	if err != nil {
		t.Fatal(err)
	}
	var msg string
	for range 50 { // the reload takes a moment
		_, err = ep.Connect(ctx)
		if err == nil {
			t.Fatal("connect succeeded with the wrong root certificate")
		}
		if msg = err.Error(); !strings.Contains(msg, "refused TLS") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Log(msg)
	if !contains(msg, "source: ", "the TLS certificate of the server at 127.0.0.1", "the driver said: ", "x509", ". Fix: ", "sslrootcert=FILE") ||
		strings.Contains(msg, "pw-s3cret") {
		t.Errorf("error %q: want the side, the certificate, the driver's words and the fix, and no password", msg)
	}
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// selfSigned makes a self-signed certificate for 127.0.0.1 and its key,
// both PEM.
func selfSigned(t *testing.T) (cert, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pglink test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// writeServerFile writes a file the server reads, as the server's user.
func writeServerFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// TestDriverCauseHidesPassword: a password the driver's message happens
// to echo is masked.
func TestDriverCauseHidesPassword(t *testing.T) {
	ep, err := Parse(Target, "postgres://u:pw-s3cret@h:5432/db")
	if err != nil {
		t.Fatal(err)
	}
	err = ep.Explain(errors.New("dial error: something about pw-s3cret"))
	if msg := err.Error(); strings.Contains(msg, "pw-s3cret") || !strings.Contains(msg, "something about ********") {
		t.Errorf("error %q: want the driver's words with the password masked", msg)
	}
}

// silentServer listens on a loopback port and accepts connections but
// never answers, as a server behind a dropping firewall seems to.
func silentServer(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).Port
}
