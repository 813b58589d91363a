package endpoint

import (
	"context"
	"strings"
	"testing"
	"time"

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

// TestExplain checks the messages of real connection failures: they name
// the side, the cause and the fix, and never the password.
func TestExplain(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec("postgres", "CREATE ROLE app LOGIN PASSWORD 'right'")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	port := strings.Split(strings.Split(c.URL("postgres"), ":")[2], "/")[0]
	for _, tc := range []struct{ url, want string }{
		{"postgres://app:wrong@127.0.0.1:" + port + "/postgres?sslmode=disable", "source: password authentication failed for user \"app\""},
		{"postgres://postgres@127.0.0.1:" + port + "/nosuchdb?sslmode=disable", "source: database \"nosuchdb\" does not exist"},
		{"postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2", "source: cannot reach the server at 127.0.0.1:1"},
	} {
		ep, err := Parse(Source, tc.url)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ep.Connect(ctx)
		if err == nil {
			t.Fatalf("connect %s succeeded", ep.Describe())
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Fix:") {
			t.Errorf("error %q, want it to contain %q and a fix", err, tc.want)
		}
		if strings.Contains(err.Error(), "wrong") {
			t.Errorf("error shows the password: %v", err)
		}
		if tc.want == "source: cannot reach the server at 127.0.0.1:1" && !IsConnectionLost(err) {
			t.Errorf("IsConnectionLost(%v) = false", err)
		}
	}
}
