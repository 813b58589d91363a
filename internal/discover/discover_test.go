package discover

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/instance"
	"github.com/pglink/pglink/internal/pgtest"
)

// listen starts a TCP server on 127.0.0.1 that runs serve on each
// connection; it stops when the test ends.
func listen(t *testing.T, serve func(net.Conn)) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// TestDiscover probes loopback ports: two PostgreSQL servers (one ready
// to link, one with wal_level = replica), a service that answers garbage,
// one that sends a banner starting with 'S' as SSH does, one that never
// answers, and a closed port.
func TestDiscover(t *testing.T) {
	ready := pgtest.Start(t, pgtest.Options{})
	replica := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_level": "replica"}})
	for _, c := range []*pgtest.Cluster{ready, replica} {
		c.CreateDB("app")
		c.Exec("app", `CREATE TABLE public.t (id int PRIMARY KEY)`, `CREATE TABLE public.u (id int PRIMARY KEY)`)
	}
	garbage := listen(t, func(c net.Conn) {
		c.Read(make([]byte, 8))
		c.Write([]byte("garbage\n"))
	})
	banner := listen(t, func(c net.Conn) {
		c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
		c.Read(make([]byte, 64))
	})
	silent := listen(t, func(c net.Conn) { c.Read(make([]byte, 64)); time.Sleep(2 * time.Second) })
	closed, err := instance.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ports := []int{ready.Port, garbage, replica.Port, banner, silent, closed}
	var spec []string
	for _, p := range ports {
		spec = append(spec, strconv.Itoa(p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	servers, err := Run(ctx, Options{Hosts: []string{"127.0.0.1"}, Ports: strings.Join(spec, ","), User: "postgres",
		Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != len(ports) {
		t.Fatalf("%d results for %d ports", len(servers), len(ports))
	}
	for i, s := range servers {
		if s.Port != ports[i] || s.Host != "127.0.0.1" {
			t.Errorf("result %d is %s:%d, want 127.0.0.1:%d", i, s.Host, s.Port, ports[i])
		}
	}
	want := []Status{StatusPostgres, StatusOther, StatusPostgres, StatusOther, StatusOther, StatusClosed}
	for i, s := range servers {
		if s.Status != want[i] {
			t.Errorf("port %d: %s (%s), want %s", s.Port, s.Status, s.Detail, want[i])
		}
	}
	if d := servers[1].Detail; !strings.Contains(d, `"garbage\n"`) {
		t.Errorf("garbage service: %q", d)
	}
	if d := servers[3].Detail; !strings.Contains(d, "SSH-2.0") {
		t.Errorf("SSH-like service: %q", d)
	}
	if d := servers[4].Detail; !strings.Contains(d, "no answer to an SSLRequest within 500ms") {
		t.Errorf("silent service: %q", d)
	}
	if d := servers[5].Detail; !strings.Contains(d, "connection refused") {
		t.Errorf("closed port: %q", d)
	}
	for _, s := range []Server{servers[0], servers[2]} {
		if s.Login != "ok" || !strings.HasPrefix(s.Version, "15.") || s.TLS {
			t.Errorf("server %d: login %q, version %q, TLS %v", s.Port, s.Login, s.Version, s.TLS)
		}
	}
	app := findDB(t, servers[0], "app")
	if !app.Ready || app.Tables != 2 || app.SizeBytes == nil || *app.SizeBytes <= 0 || len(app.Blockers) != 0 {
		t.Errorf("ready server's app: %+v", app)
	}
	app = findDB(t, servers[2], "app")
	if app.Ready || len(app.Blockers) == 0 || !strings.Contains(app.Blockers[0], "wal_level") {
		t.Errorf("replica server's app: %+v", app)
	}
	var out bytes.Buffer
	if err := WriteText(&out, servers); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, w := range []string{"ready to link", "not ready: wal_level", "not postgresql: answered", "closed: connection refused",
		"6 targets probed: 2 PostgreSQL, 3 other services, 1 closed"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("text output lacks %q:\n%s", w, out.String())
		}
	}
	b, err := json.Marshal(servers)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"databases":null`) || strings.Contains(string(b), `"blockers":null`) {
		t.Errorf("JSON holds null lists: %s", b)
	}
}

func findDB(t *testing.T, s Server, name string) Database {
	t.Helper()
	for _, d := range s.Databases {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("server %d: no database %s in %+v", s.Port, name, s.Databases)
	return Database{}
}

// TestDiscoverRefusedLogin: a server whose login is refused is still
// found, its version unknown, and the password shows nowhere.
func TestDiscoverRefusedLogin(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec("postgres", `CREATE ROLE app LOGIN PASSWORD 'right-pw'`)
	t.Setenv("PGPASSWORD", "wrong-pw")
	t.Setenv("PGPASSFILE", "/nonexistent")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	servers, err := Run(ctx, Options{Hosts: []string{"127.0.0.1"}, Ports: strconv.Itoa(c.Port), User: "app"})
	if err != nil {
		t.Fatal(err)
	}
	s := servers[0]
	if s.Status != StatusPostgres || s.Version != "" || !strings.Contains(s.Login, "refused: password authentication failed") {
		t.Errorf("refused login: %+v", s)
	}
	var out bytes.Buffer
	WriteText(&out, servers)
	b, _ := json.Marshal(servers)
	if !strings.Contains(out.String(), "version unknown") || strings.Contains(out.String()+string(b), "wrong-pw") {
		t.Errorf("output:\n%s\n%s", out.String(), b)
	}
}

func TestExpandHosts(t *testing.T) {
	got, err := ExpandHosts([]string{"10.0.0.0/30", "db1", "10.0.0.1", "[::1]", "192.168.1.7/32"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "10.0.0.1,10.0.0.2,db1,::1,192.168.1.7"; strings.Join(got, ",") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	if got, err := ExpandHosts([]string{"10.1.0.0/22"}); err != nil || len(got) != 1022 || got[0] != "10.1.0.1" || got[1021] != "10.1.3.254" {
		t.Errorf("/22: %d hosts (%v...), %v", len(got), got[:min(2, len(got))], err)
	}
	if got, err := ExpandHosts([]string{"fe80::/118"}); err != nil || len(got) != 1024 || got[1023] != "fe80::3ff" {
		t.Errorf("/118: %d hosts, %v", len(got), err)
	}
	for _, bad := range []string{"10.0.0.0/21", "fe80::/117", "0.0.0.0/0", "10.0.0.0/33", "x/24"} {
		if _, err := ExpandHosts([]string{bad}); err == nil {
			t.Errorf("%s: no error", bad)
		} else if strings.HasSuffix(bad, "/21") && !strings.Contains(err.Error(), "2048 addresses") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := ExpandHosts([]string{" ", ""}); err == nil {
		t.Error("no hosts: no error")
	}
}

func TestParsePorts(t *testing.T) {
	got, err := ParsePorts("5432-5434, 5432,6432")
	if err != nil || len(got) != 4 || got[0] != 5432 || got[3] != 6432 {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "70000", "5434-5432", "x", "1-", "-5"} {
		if _, err := ParsePorts(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := Plan(Options{Hosts: []string{"10.0.0.0/22"}, Ports: "1-100"}); err == nil || !strings.Contains(err.Error(), "at most 65536") {
		t.Errorf("too many probes: %v", err)
	}
}
