package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pglink/pglink/internal/instance"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux
// for every architecture pglink builds for).
const clockTicks = 100

// procCPU returns the CPU time (user + system) pid has used, and with
// children also what its exited, reaped children used.
func procCPU(pid int, children bool) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f, _, err := statFields(string(b))
	if err != nil {
		return 0, err
	}
	// Fields after the command: state(0) ppid(1) ... utime(11) stime(12)
	// cutime(13) cstime(14).
	n := 2
	if children {
		n = 4
	}
	var ticks int64
	for i := 11; i < 11+n; i++ {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// statFields splits /proc/PID/stat after the command name (which may hold
// spaces and parentheses) and returns the fields and the parent pid.
func statFields(stat string) ([]string, int, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, 0, fmt.Errorf("malformed stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 15 {
		return nil, 0, fmt.Errorf("malformed stat %q", stat)
	}
	ppid, err := strconv.Atoi(f[1])
	return f, ppid, err
}

// serverCPU returns the CPU time of a PostgreSQL server: the postmaster,
// its running processes, and its exited processes (the postmaster reaps
// them, so their time is in its children's times).
func serverCPU(inst *instance.Instance) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(inst.Dir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	pm, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: %w", err)
	}
	total, err := procCPU(pm, true)
	if err != nil {
		return 0, err
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if _, ppid, err := statFields(string(stat)); err != nil || ppid != pm {
			continue
		}
		if d, err := procCPU(pid, false); err == nil {
			total += d
		}
	}
	return total, nil
}

// cpuMeter measures the CPU the two servers and one client process use
// between start and stop.
type cpuMeter struct {
	src, tgt *instance.Instance
	pid      int // 0: no client process
	s0, t0   time.Duration
	p0       time.Duration
}

// cpuUse is CPU time spent in a measured interval.
type cpuUse struct {
	Source, Target, Client time.Duration
}

func startCPU(src, tgt *instance.Instance) *cpuMeter {
	m := &cpuMeter{src: src, tgt: tgt}
	m.s0, _ = serverCPU(src)
	m.t0, _ = serverCPU(tgt)
	return m
}

// client adds a process whose CPU is counted from now on.
func (m *cpuMeter) client(pid int) {
	m.pid = pid
	m.p0, _ = procCPU(pid, false)
}

func (m *cpuMeter) stop() cpuUse {
	var u cpuUse
	if s, err := serverCPU(m.src); err == nil {
		u.Source = s - m.s0
	}
	if t, err := serverCPU(m.tgt); err == nil {
		u.Target = t - m.t0
	}
	if m.pid != 0 {
		if p, err := procCPU(m.pid, false); err == nil {
			u.Client = p - m.p0
		}
	}
	return u
}
