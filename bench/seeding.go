package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/instance"
	"github.com/pglink/pglink/internal/seed"
)

// seeding is the setup of figures 1 and 6: the same source database is
// copied into a fresh target database by each tool in turn.
type seeding struct {
	pg       pglinkCmd
	src, tgt *instance.Instance
	srcDB    string
	jobs     int
	pgcopydb string // path; empty when not installed
}

// seedRun is one measurement of each tool, side by side.
type seedRun struct {
	Pglink, Pgcopydb, Dump, Restore time.Duration
	// PgcopydbSplit is pgcopydb clone splitting tables at pglink's split
	// size; Pgcopydb is pgcopydb clone with its defaults, as its users run
	// it (no split).
	PgcopydbSplit time.Duration
	// Validate is pglink validate on the whole database right after the
	// seeding, while the link runs.
	Validate                                          time.Duration
	PglinkCPU, PgcopydbCPU, PgcopydbSplitCPU, DumpCPU cpuUse
	PglinkSteps                                       seedSteps
	PgcopydbSkipped                                   bool
}

// PgcopydbBest is pgcopydb's faster configuration in this run.
func (r seedRun) PgcopydbBest() time.Duration { return min(r.Pgcopydb, r.PgcopydbSplit) }

func (r seedRun) DumpRestore() time.Duration { return r.Dump + r.Restore }

// run measures every tool once; the order turns with i, so no tool always
// comes first (into a cold cache) or last.
func (s *seeding) run(ctx context.Context, i int, profile string) (seedRun, error) {
	var r seedRun
	steps := []func() error{
		func() error { return s.pglink(ctx, &r, profile) },
		func() error { return s.pgcopydbClone(ctx, &r, false) },
		func() error { return s.pgcopydbClone(ctx, &r, true) },
		func() error { return s.dumpRestore(ctx, &r) },
	}
	for k := range steps {
		if err := checkpoint(ctx, s.src, s.tgt); err != nil {
			return r, err
		}
		if err := steps[(k+i)%len(steps)](); err != nil {
			return r, err
		}
	}
	return r, nil
}

// procCPUTotal is the CPU a client process used, children included once
// it has exited.
func procCPUTotal(p *proc) time.Duration {
	if p.exited() && p.cmd.ProcessState != nil {
		return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
	}
	d, _ := procCPU(p.pid(), true)
	return d
}

// pglink times pglink start until the link replicates, then pglink
// validate on the whole database, then drops the link and the copy.
func (s *seeding) pglink(ctx context.Context, r *seedRun, profile string) error {
	l := link{name: "bench_seed", src: s.src, tgt: s.tgt, srcDB: s.srcDB, tgtDB: s.srcDB + "_seed_pglink"}
	if err := dropDB(ctx, s.tgt, l.tgtDB); err != nil {
		return err
	}
	cpu := startCPU(s.src, s.tgt)
	start := time.Now()
	p, err := s.pg.start(l, s.jobs, profile)
	if err != nil {
		return err
	}
	defer stopLink(p)
	if err := waitPhase(ctx, p, l, "replicating", 2*time.Hour); err != nil {
		return err
	}
	r.Pglink = time.Since(start)
	r.PglinkCPU = cpu.stop()
	r.PglinkCPU.Client = procCPUTotal(p)
	r.PglinkSteps = parseSeedSteps(p.out.String(), start)
	if r.Validate, err = s.pg.validate(ctx, l, s.jobs); err != nil {
		return err
	}
	if err := stopLink(p); err != nil {
		return err
	}
	if err := s.pg.drop(ctx, l); err != nil {
		return err
	}
	return dropDB(ctx, s.tgt, l.tgtDB)
}

// pgcopydbClone times pgcopydb clone with as many table and index jobs as
// pglink has jobs: with its defaults, or splitting tables at pglink's size.
func (s *seeding) pgcopydbClone(ctx context.Context, r *seedRun, split bool) error {
	if s.pgcopydb == "" {
		r.PgcopydbSkipped = true
		return nil
	}
	db := s.srcDB + "_seed_pgcopydb"
	if err := createDB(ctx, s.tgt, db); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pglink-bench-pgcopydb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := instance.BinDir()
	if err != nil {
		return err
	}
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH")} // its pg_dump and pg_restore
	jobs := strconv.Itoa(s.jobs)
	cpu := startCPU(s.src, s.tgt)
	start := time.Now()
	args := []string{"clone", "--source", s.src.URL(s.srcDB), "--target", s.tgt.URL(db),
		"--dir", filepath.Join(dir, "work"), "--table-jobs", jobs, "--index-jobs", jobs}
	if split {
		args = append(args, "--split-tables-larger-than", strconv.FormatInt(seed.DefaultSplitBytes, 10))
	}
	p, err := startProc(env, s.pgcopydb, args...)
	if err != nil {
		return err
	}
	if err := p.wait(ctx); err != nil {
		return fmt.Errorf("pgcopydb clone: %w", err)
	}
	took, use := time.Since(start), cpu.stop()
	use.Client = procCPUTotal(p)
	if split {
		r.PgcopydbSplit, r.PgcopydbSplitCPU = took, use
	} else {
		r.Pgcopydb, r.PgcopydbCPU = took, use
	}
	return dropDB(ctx, s.tgt, db)
}

// dumpRestore times pg_dump -Fd -j N into a local directory, then
// pg_restore -j N from it (the directory format cannot be piped).
func (s *seeding) dumpRestore(ctx context.Context, r *seedRun) error {
	db := s.srcDB + "_seed_restore"
	if err := createDB(ctx, s.tgt, db); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pglink-bench-dump-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := instance.BinDir()
	if err != nil {
		return err
	}
	jobs := strconv.Itoa(s.jobs)
	cpu := startCPU(s.src, s.tgt)
	start := time.Now()
	dump, err := startProc(nil, filepath.Join(bin, "pg_dump"), append(hostArgs(s.src), "-Fd", "-j", jobs, "-f", filepath.Join(dir, "dump"), s.srcDB)...)
	if err != nil {
		return err
	}
	if err := dump.wait(ctx); err != nil {
		return err
	}
	r.Dump = time.Since(start)
	start = time.Now()
	restore, err := startProc(nil, filepath.Join(bin, "pg_restore"), append(hostArgs(s.tgt), "-j", jobs, "-d", db, filepath.Join(dir, "dump"))...)
	if err != nil {
		return err
	}
	if err := restore.wait(ctx); err != nil {
		return err
	}
	r.Restore = time.Since(start)
	r.DumpCPU = cpu.stop()
	r.DumpCPU.Client = procCPUTotal(dump) + procCPUTotal(restore)
	return dropDB(ctx, s.tgt, db)
}

// seedSteps is where pglink's seeding time went, read from its log.
type seedSteps struct {
	Start, Schema, Copy, Post time.Duration // start: until the schema copy began
}

// parseSeedSteps reads the times of pglink's seeding log lines.
func parseSeedSteps(log string, start time.Time) seedSteps {
	at := map[string]time.Time{}
	for _, line := range strings.Split(log, "\n") {
		m := logLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		for _, msg := range []string{"copying the schema (pre-data)", "copying tables", "tables copied",
			"building indexes, constraints and triggers (post-data)", "seeding done; replicating"} {
			if m[2] == msg {
				at[msg] = t
			}
		}
	}
	between := func(a, b string) time.Duration {
		ta, oka := at[a]
		tb, okb := at[b]
		if !oka || !okb {
			return 0
		}
		return tb.Sub(ta)
	}
	var s seedSteps
	if t, ok := at["copying the schema (pre-data)"]; ok {
		s.Start = t.Sub(start)
	}
	s.Schema = between("copying the schema (pre-data)", "copying tables")
	s.Copy = between("copying tables", "tables copied")
	s.Post = between("building indexes, constraints and triggers (post-data)", "seeding done; replicating")
	return s
}

var logLineRE = regexp.MustCompile(`^time=(\S+) level=\S+ msg="?([^"=]+?)"?(?: \w+=|$)`)
