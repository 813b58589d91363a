package termui

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
)

func TestFormat(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Bytes(512), "512 B"},
		{Bytes(1536), "1.5 KiB"},
		{Bytes(3 << 30), "3.0 GiB"},
		{Count(0), "0"},
		{Count(1234567), "1,234,567"},
		{Count(-1000), "-1,000"},
		{Duration(4200 * time.Millisecond), "4.2s"},
		{Duration(185 * time.Second), "3m05s"},
		{Duration(130 * time.Minute), "2h10m"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestBarLine(t *testing.T) {
	got := barLine(report.CopyProgress{Job: 0, Table: "shop.orders", Rows: 1000, Bytes: 50 << 20,
		EstBytes: 100 << 20, Elapsed: 5 * time.Second})
	for _, want := range []string{"job 1", "shop.orders", "[############............]", " 50%", "1,000 rows",
		"50.0 MiB", "10.0 MiB/s", "ETA 5.0s"} {
		if !strings.Contains(got, want) {
			t.Errorf("bar line %q lacks %q", got, want)
		}
	}
	done := barLine(report.CopyProgress{Job: 1, Table: "t", Done: true, Elapsed: time.Second})
	if !strings.Contains(done, "100%") || !strings.Contains(done, "done in 1.0s") {
		t.Errorf("done bar line %q", done)
	}
}

// TestBarsRedrawInPlace checks that a redraw moves the cursor up over the
// lines drawn before, and that a log line lands above the bars.
func TestBarsRedrawInPlace(t *testing.T) {
	var out bytes.Buffer
	b := NewBars(&out)
	b.Report(report.CopyProgress{Job: 0, Table: "a.one"})
	b.Report(report.CopyProgress{Job: 1, Table: "a.two"})
	b.Draw()
	if strings.Contains(out.String(), "\x1b[2A") {
		t.Fatal("first draw moved the cursor up")
	}
	out.Reset()
	b.Log().Write([]byte("level=INFO msg=hello\n"))
	got := out.String()
	if !strings.HasPrefix(got, "\x1b[2A\r\x1b[J"+"level=INFO msg=hello\n") || strings.Count(got, "job ") != 2 {
		t.Fatalf("log write = %q, want erase, the line, then both bars", got)
	}
	// Once every job is done, a log line leaves the bars in place above it.
	b.Report(report.CopyProgress{Job: 0, Table: "a.one", Done: true})
	b.Report(report.CopyProgress{Job: 1, Table: "a.two", Done: true})
	b.Draw()
	out.Reset()
	b.Log().Write([]byte("level=INFO msg=seeded\n"))
	b.Log().Write([]byte("level=INFO msg=streaming\n"))
	if got, want := out.String(), "level=INFO msg=seeded\nlevel=INFO msg=streaming\n"; got != want {
		t.Fatalf("log writes after seeding = %q, want %q", got, want)
	}
	b.Report(report.CopyProgress{Job: 0, Table: "a.three"})
	b.Draw()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out.Reset()
	b.Run(ctx) // draws once more on the way out
	if !strings.HasPrefix(out.String(), "\x1b[1A") {
		t.Fatalf("final draw = %q", out.String())
	}
}

func TestLogProgress(t *testing.T) {
	var out bytes.Buffer
	l := NewLogProgress(slog.New(slog.NewTextHandler(&out, nil)), time.Hour)
	l.Report(report.CopyProgress{Job: 0, Table: "shop.orders", Rows: 10, Bytes: 100, EstBytes: 1000, Elapsed: time.Second})
	l.Flush()
	l.Flush() // nothing new: no second line
	l.Report(report.CopyProgress{Job: 0, Table: "shop.orders", Rows: 20, Bytes: 200, Done: true, Elapsed: time.Second})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "msg=copying") || !strings.Contains(lines[0], "eta=9s") ||
		!strings.Contains(lines[1], "msg=copied") || !strings.Contains(lines[1], "rows=20") {
		t.Fatalf("log lines:\n%s", out.String())
	}
}

func TestStatus(t *testing.T) {
	lagBytes, lagSecs, eta, active := int64(2048), 0.5, 12.0, true
	var out bytes.Buffer
	err := Status(&out, &report.Status{Name: "demo", Phase: state.PhaseSeeding, Running: true,
		SourceLSN: "0/3000000", AppliedLSN: "0/2000000", LagBytes: &lagBytes, LagSeconds: &lagSecs,
		SlotName: "pglink_demo", SlotActive: &active, LastError: "boom", Remedy: "fix it",
		Tables: []report.Table{{Name: "shop.orders", State: state.TableCopying, RowsCopied: 1500, EstRows: 3000,
			BytesCopied: 1 << 20, EstBytes: 2 << 20, ETASeconds: &eta}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"seeding (running)", "0/3000000", "2.0 KiB, 0.5 s", "pglink_demo, active",
		"last error   boom", "remedy       fix it", "0 of 1 copied", "1,500", "12s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
}
