package termui

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/report"
)

// redrawEvery bounds redraws to 5 per second: faster is flicker, not news.
const redrawEvery = 200 * time.Millisecond

const barWidth = 24

// Bars draws one progress line per copy job on a terminal and keeps it
// in place with ANSI cursor moves. Log lines written through Log appear
// above the bars. Safe for concurrent use.
type Bars struct {
	mu    sync.Mutex
	out   io.Writer
	jobs  map[int]report.CopyProgress
	drawn int  // lines drawn last time, to move back over
	dirty bool // a report arrived since the last draw
}

// NewBars draws on out, which should be a terminal.
func NewBars(out io.Writer) *Bars {
	return &Bars{out: out, jobs: map[int]report.CopyProgress{}}
}

// Report records a job's progress; it is drawn at the next redraw.
func (b *Bars) Report(p report.CopyProgress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jobs[p.Job] = p
	b.dirty = true
}

// Run redraws when something changed, at most 5 times a second, until ctx
// ends; then it draws a last time so the final state stays on screen.
func (b *Bars) Run(ctx context.Context) {
	tick := time.NewTicker(redrawEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			b.Draw()
			return
		case <-tick.C:
			b.mu.Lock()
			if b.dirty {
				b.drawLocked()
			}
			b.mu.Unlock()
		}
	}
}

// Draw redraws the bars now.
func (b *Bars) Draw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drawLocked()
}

func (b *Bars) drawLocked() {
	var buf bytes.Buffer
	b.eraseLocked(&buf)
	lines := b.linesLocked()
	for _, l := range lines {
		buf.WriteString(l)
		buf.WriteString("\x1b[K\n") // clear what a longer earlier line left
	}
	b.drawn = len(lines)
	b.dirty = false
	b.out.Write(buf.Bytes())
}

// eraseLocked moves the cursor to the first bar line and clears the
// screen below it (CSI n A: cursor up; CSI J: erase below).
func (b *Bars) eraseLocked(buf *bytes.Buffer) {
	if b.drawn > 0 {
		fmt.Fprintf(buf, "\x1b[%dA\r\x1b[J", b.drawn)
	}
}

// Lines returns the bar lines as they would be drawn now, without escapes.
func (b *Bars) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.linesLocked()
}

func (b *Bars) linesLocked() []string {
	ids := make([]int, 0, len(b.jobs))
	for id := range b.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	lines := make([]string, 0, len(ids))
	for _, id := range ids {
		lines = append(lines, barLine(b.jobs[id]))
	}
	return lines
}

// barLine renders: job 1  shop.orders [part]  [#####.....]  42%  12,345 rows  3.2 MiB  1.1 MiB/s  ETA 3.0s
func barLine(p report.CopyProgress) string {
	name := p.Table
	if p.Part != "" {
		name += " " + p.Part
	}
	frac := -1.0
	if p.EstBytes > 0 {
		frac = min(float64(p.Bytes)/float64(p.EstBytes), 1)
	}
	if p.Done {
		frac = 1
	}
	bar, pct := strings.Repeat("?", barWidth), "  ?%"
	if frac >= 0 {
		n := int(frac * barWidth)
		bar = strings.Repeat("#", n) + strings.Repeat(".", barWidth-n)
		pct = fmt.Sprintf("%3.0f%%", frac*100)
	}
	tail := "ETA ?"
	if p.Done {
		tail = "done in " + Duration(p.Elapsed)
	} else if left, ok := eta(p.Bytes, p.EstBytes, p.Elapsed); ok {
		tail = "ETA " + Duration(left)
	}
	return fmt.Sprintf("job %-2d %-32s [%s] %s  %s rows  %s  %s/s  %s", p.Job+1, name, bar, pct,
		Count(p.Rows), Bytes(p.Bytes), Bytes(int64(rate(p.Bytes, p.Elapsed))), tail)
}

// Log returns a writer for log lines (give it to slog's handler): each
// write erases the bars, prints the line, and draws the bars again below.
func (b *Bars) Log() io.Writer { return logWriter{b} }

type logWriter struct{ b *Bars }

func (w logWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	var buf bytes.Buffer
	if w.b.allDoneLocked() {
		// Seeding is over: leave the final bars where they are and let the
		// log go on below them, instead of redrawing them forever.
		w.b.jobs = map[int]report.CopyProgress{}
	} else {
		w.b.eraseLocked(&buf)
	}
	buf.Write(p)
	w.b.drawn = 0
	if _, err := w.b.out.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	if len(w.b.jobs) > 0 {
		w.b.drawLocked()
	}
	return len(p), nil
}

// allDoneLocked reports whether bars are drawn and every job is done.
func (b *Bars) allDoneLocked() bool {
	if b.drawn == 0 || len(b.jobs) == 0 {
		return false
	}
	for _, p := range b.jobs {
		if !p.Done {
			return false
		}
	}
	return true
}
