package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/instance"
	"github.com/pglink/pglink/internal/pgtest"
)

func TestDiscoverCommand(t *testing.T) {
	clearEnv(t)
	c := pgtest.Start(t, pgtest.Options{})
	closed, err := instance.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ports := strconv.Itoa(c.Port) + "," + strconv.Itoa(closed)
	code, stdout, stderr := pglink(t, "discover", "--hosts", "127.0.0.1", "--ports", ports, "--user", "postgres", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep struct {
		Summary struct{ Probed, PostgreSQL, Closed int }
		Servers []struct {
			Port    int
			Status  string
			Version string
		}
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, stdout)
	}
	if rep.Summary.Probed != 2 || rep.Summary.PostgreSQL != 1 || rep.Summary.Closed != 1 ||
		rep.Servers[0].Status != "postgresql" || !strings.HasPrefix(rep.Servers[0].Version, "15.") {
		t.Errorf("report: %+v", rep)
	}
	for _, args := range [][]string{
		{"discover", "--ports", "5432"},
		{"discover", "--hosts", "127.0.0.0/8"},
		{"discover", "--hosts", "127.0.0.1", "--ports", "99999"},
	} {
		if code, _, stderr := pglink(t, args...); code != exitUsage || !strings.Contains(stderr, "--help") {
			t.Errorf("pglink %s: exit %d, stderr %q", strings.Join(args, " "), code, stderr)
		}
	}
}
