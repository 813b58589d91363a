package termui

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
)

// Status writes a link's status for people: phase, positions, lag,
// throughput, the slot, per-table seeding progress, and the last error with
// its remedy.
func Status(w io.Writer, st *report.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	running := "no pglink process runs it"
	if st.Running {
		running = "running"
	}
	fmt.Fprintf(tw, "link\t%s\n", st.Name)
	fmt.Fprintf(tw, "phase\t%s (%s)\n", st.Phase, running)
	if st.SourceLSN != "" {
		fmt.Fprintf(tw, "source LSN\t%s\n", st.SourceLSN)
	}
	applied := orDash(st.AppliedLSN)
	if !st.LastApplied.IsZero() {
		applied += fmt.Sprintf(" (source commit of %s)", st.LastApplied.Local().Format(time.DateTime))
	}
	fmt.Fprintf(tw, "applied LSN\t%s\n", applied)
	fmt.Fprintf(tw, "lag\t%s\n", lagText(st))
	fmt.Fprintf(tw, "throughput\t%.0f txn/s, %.0f changes/s\n", st.ApplyTxnPerSec, st.ApplyChangePerSec)
	fmt.Fprintf(tw, "slot\t%s\n", slotText(st))
	if !st.UpdatedAt.IsZero() {
		fmt.Fprintf(tw, "updated\t%s\n", st.UpdatedAt.Local().Format(time.DateTime))
	}
	if st.LastError != "" {
		fmt.Fprintf(tw, "last error\t%s\n", st.LastError)
	}
	if st.Remedy != "" {
		fmt.Fprintf(tw, "remedy\t%s\n", st.Remedy)
	}
	for _, warning := range st.Warnings {
		fmt.Fprintf(tw, "warning\t%s\n", warning)
	}
	if st.DDLMode != "" {
		fmt.Fprintf(tw, "schema changes\t--ddl %s\n", st.DDLMode)
	}
	for _, d := range st.DDL {
		fmt.Fprintf(tw, "  %s\t%s at source %s: %s\n", d.At.Local().Format(time.DateTime), strings.TrimPrefix(string(d.Event), "ddl_"),
			orDash(d.SourceLSN), strings.Join(strings.Fields(d.Statement), " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return tables(w, st.Tables)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func lagText(st *report.Status) string {
	switch {
	case st.LagBytes == nil && st.LagSeconds == nil:
		return "unknown"
	case st.LagBytes == nil:
		return fmt.Sprintf("%.1f s", *st.LagSeconds)
	case st.LagSeconds == nil:
		return Bytes(*st.LagBytes)
	}
	return fmt.Sprintf("%s, %.1f s", Bytes(*st.LagBytes), *st.LagSeconds)
}

func slotText(st *report.Status) string {
	s := orDash(st.SlotName)
	if st.SlotActive != nil {
		if *st.SlotActive {
			s += ", active"
		} else {
			s += ", inactive"
		}
	}
	if st.SlotRetainedBytes != nil {
		s += ", retains " + Bytes(*st.SlotRetainedBytes) + " of WAL"
	}
	return s
}

// tables writes the per-table seeding progress.
func tables(w io.Writer, tables []report.Table) error {
	if len(tables) == 0 {
		return nil
	}
	copied := 0
	for _, t := range tables {
		if t.State == state.TableCopied {
			copied++
		}
	}
	fmt.Fprintf(w, "\ntables: %d of %d copied\n", copied, len(tables))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "table\tstate\trows\tof about\tbytes\tof about\tETA\tsync LSN\t")
	for _, t := range tables {
		eta := "-"
		if t.ETASeconds != nil {
			eta = Duration(time.Duration(*t.ETASeconds * float64(time.Second)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", t.Name, t.State, Count(t.RowsCopied), estimate(t.EstRows, Count),
			Bytes(t.BytesCopied), estimate(t.EstBytes, Bytes), eta, orDash(t.SyncLSN))
	}
	return tw.Flush()
}

// estimate formats a size estimate; 0 means the server had none (a table
// never analyzed), shown as "?".
func estimate(n int64, format func(int64) string) string {
	if n <= 0 {
		return "?"
	}
	return format(n)
}
