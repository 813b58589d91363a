package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/instance"
	"github.com/pglink/pglink/internal/wait"
)

// pglinkCmd runs the pglink command as users do, as a process of its own
// (so its memory is its own, and a stop is a real SIGINT).
type pglinkCmd struct {
	bin string
	// profileDir, when set, receives a CPU and an allocation profile of
	// every pglink start process, named after what it ran for.
	profileDir string
	args       []string // more flags of pglink start (--pglink-flags)
}

// link is one link the benchmark runs: a source and a target database.
type link struct {
	name         string
	src, tgt     *instance.Instance
	srcDB, tgtDB string
}

func (l link) source() string { return l.src.URL(l.srcDB) }
func (l link) target() string { return l.tgt.URL(l.tgtDB) }
func (l link) slot() string   { return "pglink_" + l.name }
func (l link) origin() string { return "pglink_" + l.name }

func (l link) env() []string {
	return []string{"PGLINK_NAME=" + l.name, "PGLINK_SOURCE=" + l.source(), "PGLINK_TARGET=" + l.target()}
}

// start runs pglink start for l; profile names the profiles when the
// benchmark profiles.
func (c pglinkCmd) start(l link, jobs int, profile string) (*proc, error) {
	env := l.env()
	if c.profileDir != "" && profile != "" {
		env = append(env,
			"PGLINK_CPUPROFILE="+filepath.Join(c.profileDir, profile+".cpu.pprof"),
			"PGLINK_MEMPROFILE="+filepath.Join(c.profileDir, profile+".allocs.pprof"))
	}
	p, err := startProc(env, c.bin, append([]string{"start", "--jobs", strconv.Itoa(jobs)}, c.args...)...)
	if err == nil && c.profileDir != "" && profile != "" {
		go func() { // its log goes next to its profiles
			<-p.done
			os.WriteFile(filepath.Join(c.profileDir, profile+".log"), []byte(p.out.String()), 0o644)
		}()
	}
	return p, err
}

// stop stops a pglink start process cleanly, as Ctrl-C does.
func stopLink(p *proc) error {
	if p == nil || p.exited() {
		return nil
	}
	return p.stop(time.Minute)
}

func (c pglinkCmd) drop(ctx context.Context, l link) error {
	out, err := run(ctx, l.env(), c.bin, "drop")
	if err != nil {
		return fmt.Errorf("pglink drop %s: %w\n%s", l.name, err, tail(out, 5))
	}
	return nil
}

// validate runs pglink validate on the whole link and returns its time.
func (c pglinkCmd) validate(ctx context.Context, l link, jobs int) (time.Duration, error) {
	start := time.Now()
	out, err := run(ctx, l.env(), c.bin, "validate", "--jobs", strconv.Itoa(jobs))
	if err != nil {
		return 0, fmt.Errorf("pglink validate %s: %w\n%s", l.name, err, tail(out, 10))
	}
	return time.Since(start), nil
}

// hasCommand reports whether pglink knows a subcommand: its --help works.
func (c pglinkCmd) hasCommand(ctx context.Context, sub string) bool {
	cmd := exec.CommandContext(ctx, c.bin, sub, "--help")
	return cmd.Run() == nil
}

func (c pglinkCmd) version(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, c.bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	return string(trimNL(out))
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// waitPhase waits until the link's row in the target says phase, reading
// the same row pglink status reads. It fails at once when p exits.
func waitPhase(ctx context.Context, p *proc, l link, phase string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		if p != nil && p.exited() {
			return fmt.Errorf("pglink start exited before phase %s: %v\n%s", phase, p.err, tail(p.out.String(), 20))
		}
		if conn == nil {
			conn, _ = pgx.Connect(ctx, l.target()) // the target database may not exist yet
		}
		if conn != nil {
			var got string
			err := conn.QueryRow(ctx, `SELECT phase FROM pglink.links WHERE name = $1`, l.name).Scan(&got)
			if err == nil && got == phase {
				return nil
			}
			if err != nil && !errors.Is(err, pgx.ErrNoRows) && conn.PgConn().TxStatus() == 'E' {
				conn.Close(ctx)
				conn = nil
			}
		}
		if err := wait.Sleep(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("link %s: phase %s not reached: %w", l.name, phase, err)
		}
	}
}

// markerSeq numbers markers; unique within a run.
var markerSeq atomic.Int64

// writeMarker commits a marker row on the source and returns its id.
func writeMarker(ctx context.Context, conn *pgx.Conn) (int64, error) {
	id := markerSeq.Add(1)
	if _, err := conn.Exec(ctx, `INSERT INTO bench_marker (id) VALUES ($1)`, id); err != nil {
		return 0, fmt.Errorf("write marker: %w", err)
	}
	return id, nil
}

// waitMarker waits until the target holds marker id, polling every 10 ms:
// the target then has applied every source transaction before it. A
// non-nil p that exits first is an error.
func waitMarker(ctx context.Context, conn *pgx.Conn, id int64, p *proc, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM bench_marker WHERE id = $1`, id).Scan(&n); err != nil {
			return fmt.Errorf("wait for marker %d: %w", id, err)
		}
		if n > 0 {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("pglink exited before applying marker %d: %v\n%s", id, p.err, tail(p.out.String(), 20))
		}
		if err := wait.Sleep(ctx, 10*time.Millisecond); err != nil {
			return fmt.Errorf("marker %d not applied: %w", id, err)
		}
	}
}

// ensureDir makes dir when it is set.
func ensureDir(dir string) error {
	if dir == "" {
		return nil
	}
	return os.MkdirAll(dir, 0o755)
}
