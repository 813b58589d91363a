package link

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
)

// pglinkBinary is the pglink command, built once per test run.
func pglinkBinary(t *testing.T) string { return pgtest.PglinkBinary(t) }

// process is a pglink start command running as a child process.
type process struct {
	cmd  *exec.Cmd
	out  *lockedWriter
	done chan struct{} // closed when the process has exited
}

// exited reports whether the process has ended, with its output.
func (p *process) exited() (bool, string) {
	select {
	case <-p.done:
		return true, p.out.String()
	default:
		return false, ""
	}
}

func startProcess(t *testing.T, name, source, target string) *process {
	t.Helper()
	cmd := exec.Command(pglinkBinary(t), "start", "--name", name, "--jobs", "2", "--verbose")
	cmd.Env = append(os.Environ(), "PGLINK_SOURCE="+source, "PGLINK_TARGET="+target)
	out := &lockedWriter{w: &strings.Builder{}}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("pglink start output:\n%s", p.out.String())
		}
	})
	return p
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (p *process) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// peakRSS returns the process's peak resident memory in bytes.
func (p *process) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return -1
}

// writer commits small transactions on the source and remembers every id
// whose commit the client saw succeed.
type writer struct {
	committed sync.Map
	n         atomic.Int64
}

func (w *writer) run(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for i := 1; ctx.Err() == nil; i++ {
		if err := writeLedger(ctx, conn, int64(i)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		w.committed.Store(i, true)
		w.n.Add(1)
	}
	return nil
}

// writeLedger commits one small transaction of the bank workload: ledger
// row i and a balance change.
func writeLedger(ctx context.Context, conn *pgx.Conn, i int64) error {
	_, err := conn.Exec(ctx, `WITH ins AS (INSERT INTO bank.ledger (id, amount) VALUES ($1::bigint, $1::bigint * 3) RETURNING id)
		UPDATE bank.accounts SET balance = balance + 1, touched = now() WHERE id = $1::bigint % 100 + 1`, i)
	return err
}

func bankFixture(c *pgtest.Cluster, db string, bigRows int) {
	c.Exec(db, `CREATE SCHEMA bank`,
		`CREATE TABLE bank.accounts (id int PRIMARY KEY, balance bigint NOT NULL, touched timestamptz)`,
		`INSERT INTO bank.accounts SELECT g, 0, now() FROM generate_series(1, 100) g`,
		`CREATE TABLE bank.ledger (id bigint PRIMARY KEY, amount bigint)`)
	for i := 1; i <= 5; i++ {
		c.Exec(db, fmt.Sprintf(`CREATE TABLE bank.big%d (id bigint PRIMARY KEY, pad text)`, i),
			fmt.Sprintf(`INSERT INTO bank.big%d SELECT g, md5(g::text) FROM generate_series(1, %d) g`, i, bigRows))
	}
}

// TestKillDuringSeedAndStream kills pglink with SIGKILL while it copies and
// again while it streams under a write workload, restarts it each time, and
// checks that the target holds exactly the source's rows: nothing lost,
// nothing applied twice.
func TestKillDuringSeedAndStream(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("bank")
	bankFixture(src, "bank", 300000)
	source, target := src.URL("bank"), dst.URL("bank")

	ctx, stopWrites := context.WithCancel(context.Background())
	w := &writer{}
	werr := make(chan error, 1)
	go func() { werr <- w.run(ctx, source) }()
	defer stopWrites()

	p := startProcess(t, "killme", source, target)
	waitFor(t, "some tables copied, some not", 2*time.Minute, nil, func() (bool, error) {
		if gone, out := p.exited(); gone {
			return false, fmt.Errorf("pglink exited: %s", out)
		}
		var copied int
		err := execQueryInt(dst, "bank", `SELECT count(*) FROM pglink.tables WHERE state = 'copied'`, &copied)
		if err == nil && copied == 7 {
			return false, fmt.Errorf("all 7 tables copied before the kill; make them bigger")
		}
		return err == nil && copied >= 1, nil
	})
	p.kill()
	t.Logf("killed during seeding; writer committed %d so far", w.n.Load())

	p = startProcess(t, "killme", source, target)
	waitFor(t, "replicating after restart", 2*time.Minute, nil, func() (bool, error) {
		var phase string
		err := execQueryString(dst, "bank", `SELECT phase FROM pglink.links WHERE name = 'killme'`, &phase)
		return err == nil && phase == "replicating", nil
	})
	before := w.n.Load()
	waitFor(t, "writes streamed", time.Minute, nil, func() (bool, error) {
		select {
		case err := <-werr:
			return false, fmt.Errorf("writer stopped: %v", err)
		default:
		}
		return w.n.Load() > before+200, nil
	})
	p.kill()
	t.Logf("killed during streaming; writer committed %d so far", w.n.Load())

	p = startProcess(t, "killme", source, target)
	time.Sleep(2 * time.Second) // let it stream under load before the writes stop
	stopWrites()
	if err := <-werr; err != nil {
		t.Fatalf("writer: %v", err)
	}
	l := &testLink{t: t, cfg: Config{Name: "killme", Target: target}}
	waitCaughtUp(t, l, src, "bank", 2*time.Minute)
	assertSame(t, src, dst, "bank", "bank")
	onTarget := map[int64]bool{}
	rows, err := dst.Connect("bank").Query(context.Background(), `SELECT id FROM bank.ledger`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		onTarget[id] = true
	}
	var missing int
	w.committed.Range(func(k, _ any) bool {
		if !onTarget[int64(k.(int))] {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d transactions the client saw committed are missing on the target", missing)
	}
	t.Logf("writer committed %d transactions; all on the target", w.n.Load())
	p.kill()
	if err := state.Drop(context.Background(), "killme", source, target, nil); err != nil {
		t.Fatalf("drop: %v", err)
	}
}

func execQueryInt(c *pgtest.Cluster, db, sql string, out *int) error {
	var s string
	if err := execQueryString(c, db, sql, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	*out = n
	return err
}

func execQueryString(c *pgtest.Cluster, db, sql string, out *string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, "SELECT ("+sql+")::text").Scan(out)
}

// TestMain removes the pglink binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.RemovePglinkBinary()
	os.Exit(code)
}
