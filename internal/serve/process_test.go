package serve

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/pgtest"
)

// serveProcess is pglink serve running as a child process.
type serveProcess struct {
	cmd  *exec.Cmd
	addr string
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startServe(t *testing.T, cfg string, env ...string) *serveProcess {
	t.Helper()
	p := &serveProcess{addr: freeAddr(t), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(pgtest.PglinkBinary(t), "serve", "--config", cfg, "--listen", p.addr)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("pglink serve at %s:\n%s", p.addr, p.out.String())
		}
	})
	return p
}

// phase is the link's phase as this process's /metrics says.
func (p *serveProcess) phase(t *testing.T, link string) string {
	fams := scrape(t, p.addr)
	for _, m := range fams["pglink_link_phase"].GetMetric() {
		var l, ph string
		for _, lp := range m.Label {
			switch lp.GetName() {
			case "link":
				l = lp.GetValue()
			case "phase":
				ph = lp.GetValue()
			}
		}
		if l == link && m.Gauge.GetValue() == 1 {
			return ph
		}
	}
	return ""
}

func (p *serveProcess) up(t *testing.T) {
	t.Helper()
	waitUntil(t, "pglink serve up", 30*time.Second, func() bool {
		c, err := net.Dial("tcp", p.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// TestServeTakeover runs two pglink serve processes on one file: the link
// runs in one; killed with SIGKILL, the other takes it over within 10 s,
// and no row is lost or doubled while a writer goes on.
func TestServeTakeover(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	fillDB(src, "shop", 1000)
	cfg := tempFile(t, "links.yaml")
	source := strings.Replace(src.URL("shop"), "postgres@", "postgres:${SHOP_PASSWORD}@", 1)
	writeConfig(t, cfg, "links:\n"+linkYAML("shop", source, dst.URL("shop")))
	env := "SHOP_PASSWORD=not-checked"
	a := startServe(t, cfg, env)
	a.up(t)
	waitUntil(t, "shop replicating in the first process", 2*time.Minute, func() bool { return a.phase(t, "shop") == "replicating" })
	b := startServe(t, cfg, env)
	b.up(t)
	waitUntil(t, "the second process standing by", 30*time.Second, func() bool { return b.phase(t, "shop") == "standby" })
	// Standing by is cheap: one session on the target, kept, not one (or
	// more) opened at each look at the lease.
	opened := targetSessions(t, dst.URL("shop"))
	time.Sleep(3*LeaseRetry + time.Second)
	if n := targetSessions(t, dst.URL("shop")) - opened; n > 2 {
		t.Errorf("the standby opened %d sessions on the target in %s", n, 3*LeaseRetry+time.Second)
	}

	ctx, stopWriter := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := pgx.Connect(context.Background(), src.URL("shop"))
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(context.Background())
		for i := 10000; ctx.Err() == nil; i++ {
			if _, err := conn.Exec(context.Background(), `INSERT INTO items VALUES ($1, 'w', $2)`, i, i); err != nil {
				t.Error(err)
				return
			}
			if _, err := conn.Exec(context.Background(), `UPDATE items SET n = n + 1 WHERE id = $1`, i-500); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(2 * time.Second)
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
	killed := time.Now()
	// Taken over: it replicates, and has applied the writer's transactions.
	waitUntil(t, "the second process to take the link over", 10*time.Second, func() bool {
		applied, _ := metric(scrape(t, b.addr), "pglink_applied_transactions_total", "link", "shop")
		return b.phase(t, "shop") == "replicating" && applied > 0
	})
	t.Logf("taken over in %s", time.Since(killed).Round(10*time.Millisecond))
	time.Sleep(2 * time.Second)
	stopWriter()
	wg.Wait()
	waitCaughtUp(t, "shop", dst.URL("shop"), src, "shop")
	assertSame(t, src, dst, "shop", "shop")
	if strings.Contains(b.out.String(), "not-checked") {
		t.Error("the log shows the password")
	}
	rss := peakRSS(b.cmd.Process.Pid)

	// SIGTERM stops it cleanly: exit 0.
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		t.Fatal("pglink serve did not stop within 30 s of SIGTERM")
	}
	if code := b.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("pglink serve exited with %d after SIGTERM", code)
	}
	t.Logf("peak RSS of pglink serve with one link: %d MiB", rss>>20)
}

// peakRSS returns a process's peak resident memory in bytes.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &kb); err == nil {
			return kb * 1024
		}
	}
	return -1
}

// targetSessions is how many sessions were ever opened on url's database
// (besides the one that asks), once the servers' statistics are current.
func targetSessions(t *testing.T, url string) int64 {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	time.Sleep(1500 * time.Millisecond) // every session's counters flushed (at most a second after its last query)
	var n int64
	if err := conn.QueryRow(context.Background(), `SELECT sessions FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n - 1
}
