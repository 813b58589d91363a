package validate

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes the report as a table for people: per table the rows
// compared, the chunks, the differences and the time, then the keys that
// differ, the objects found on one side only, and the verdict.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "table\tmethod\tsource rows\ttarget rows\tchunks\tdiffering\tmissing\textra\tdifferent\ttime\tresult")
	for _, t := range r.Tables {
		result := "identical"
		if t.Differs() {
			result = "DIFFERENT"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", t.Table, t.Method, t.SourceRows, t.TargetRows,
			t.Chunks, t.ChunksDiffering, t.MissingCount, t.ExtraCount, t.DifferentCount, seconds(t.Elapsed), result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range r.Tables {
		for _, l := range []struct {
			what  string
			keys  []string
			count int64
		}{{"missing on the target", t.Missing, t.MissingCount}, {"extra on the target", t.Extra, t.ExtraCount},
			{"different", t.Different, t.DifferentCount}} {
			if len(l.keys) == 0 {
				continue
			}
			more := ""
			if n := l.count - int64(len(l.keys)); n > 0 {
				more = fmt.Sprintf(" and %d more", n)
			}
			fmt.Fprintf(w, "%s: %s: %s%s\n", t.Table, l.what, strings.Join(l.keys, ", "), more)
		}
	}
	for _, l := range []struct {
		what  string
		names []string
	}{{"only on the source", r.OnlySource}, {"only on the target", r.OnlyTarget}, {"column types differ", r.Different}} {
		if len(l.names) > 0 {
			fmt.Fprintf(w, "%s: %s\n", l.what, strings.Join(l.names, ", "))
		}
	}
	var behind []string
	for _, s := range r.Sequences {
		if s.SourceValue != nil && s.TargetValue != nil && *s.SourceValue != *s.TargetValue {
			behind = append(behind, fmt.Sprintf("%s (%d on the source, %d on the target)", s.Sequence, *s.SourceValue, *s.TargetValue))
		}
	}
	if len(behind) > 0 {
		fmt.Fprintf(w, "sequences not in step (expected while the link replicates; failover sets them): %s\n", strings.Join(behind, ", "))
	}
	for _, warning := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warning)
	}
	verdict := "source and target hold the same data"
	if !r.Equal() {
		verdict = "source and target DIFFER"
	}
	_, err := fmt.Fprintf(w, "%s (%d tables, %s)\n", verdict, len(r.Tables), seconds(r.Elapsed))
	return err
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%.1fs", d.Seconds())
}
