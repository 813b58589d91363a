package termui

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/report"
)

// LogProgress reports seeding progress as structured log lines, for output
// that is not a terminal (a log file, a service manager's journal): one
// line per busy job every interval, and one when a table part is done.
// Safe for concurrent use.
type LogProgress struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	jobs     map[int]report.CopyProgress
	logged   map[int]report.CopyProgress // last state written per job
}

// NewLogProgress logs to log every interval (5 s when 0).
func NewLogProgress(log *slog.Logger, interval time.Duration) *LogProgress {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return &LogProgress{log: log, interval: interval,
		jobs: map[int]report.CopyProgress{}, logged: map[int]report.CopyProgress{}}
}

// Report records a job's progress, and logs at once when a part is done.
func (l *LogProgress) Report(p report.CopyProgress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.jobs[p.Job] = p
	if p.Done {
		l.logged[p.Job] = p
		l.log.Info("copied", attrs(p)...)
	}
}

// Run logs the busy jobs every interval until ctx ends.
func (l *LogProgress) Run(ctx context.Context) {
	tick := time.NewTicker(l.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			l.Flush()
		}
	}
}

// Flush logs every job that progressed since its last line.
func (l *LogProgress) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]int, 0, len(l.jobs))
	for id := range l.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p := l.jobs[id]
		if p == l.logged[id] || p.Done {
			continue
		}
		l.logged[id] = p
		l.log.Info("copying", attrs(p)...)
	}
}

func attrs(p report.CopyProgress) []any {
	a := []any{"job", p.Job + 1, "table", p.Table}
	if p.Part != "" {
		a = append(a, "part", p.Part)
	}
	a = append(a, "rows", p.Rows, "bytes", p.Bytes, "elapsed", p.Elapsed.Round(100*time.Millisecond),
		"bytes_per_sec", int64(rate(p.Bytes, p.Elapsed)))
	if p.EstBytes > 0 && !p.Done {
		a = append(a, "est_bytes", p.EstBytes)
		if left, ok := eta(p.Bytes, p.EstBytes, p.Elapsed); ok {
			a = append(a, "eta", left.Round(time.Second))
		}
	}
	return a
}
