package validate

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
)

// compareSchema compares the tables' columns and the sequences on both
// sides, and returns per table the columns both sides have, in the
// source's order: the rows are compared on those.
func compareSchema(ctx context.Context, o Options, rep *Report) (map[string][]string, error) {
	s, err := openSides(ctx, o)
	if err != nil {
		return nil, err
	}
	defer s.close(ctx)
	var tgtTables []catalog.Table
	var srcSeqs, tgtSeqs []catalog.Sequence
	err = both(ctx, s, func(ctx context.Context, side string, conn *pgx.Conn) error {
		seqs, err := catalog.Sequences(ctx, conn)
		if err != nil {
			return fmt.Errorf("%s: list sequences: %w", side, err)
		}
		if side == "source" {
			srcSeqs = seqs
			return nil
		}
		tgtSeqs = seqs
		if tgtTables, err = catalog.Tables(ctx, conn, catalog.Filter{}); err != nil {
			return fmt.Errorf("target: list tables: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep.Sequences = compareSequences(srcSeqs, tgtSeqs)
	return compareColumns(o.Tables, tgtTables, rep), nil
}

func compareColumns(src, tgt []catalog.Table, rep *Report) map[string][]string {
	byKey := map[string]catalog.Table{}
	for _, t := range tgt {
		byKey[t.Key()] = t
	}
	common := map[string][]string{}
	for _, st := range src {
		tt, ok := byKey[st.Key()]
		if !ok {
			rep.OnlySource = append(rep.OnlySource, st.Key())
			continue
		}
		types := map[string]string{}
		for _, c := range tt.Columns {
			types[c.Name] = c.Type
		}
		seen := map[string]bool{}
		for _, c := range st.Columns {
			seen[c.Name] = true
			typ, ok := types[c.Name]
			switch {
			case !ok:
				rep.OnlySource = append(rep.OnlySource, st.Key()+"."+c.Name)
			case typ != c.Type:
				rep.Different = append(rep.Different, fmt.Sprintf("%s.%s: %s on the source, %s on the target", st.Key(), c.Name, c.Type, typ))
			default:
				common[st.Key()] = append(common[st.Key()], c.Name)
			}
		}
		for _, c := range tt.Columns {
			if !seen[c.Name] {
				rep.OnlyTarget = append(rep.OnlyTarget, st.Key()+"."+c.Name)
			}
		}
	}
	return common
}

func compareSequences(src, tgt []catalog.Sequence) []SequenceResult {
	values := map[string]*SequenceResult{}
	value := func(s catalog.Sequence) *int64 {
		v := s.LastValue
		if !s.IsCalled {
			v--
		}
		return &v
	}
	for _, s := range src {
		values[s.Key()] = &SequenceResult{Sequence: s.Key(), SourceValue: value(s)}
	}
	for _, s := range tgt {
		r, ok := values[s.Key()]
		if !ok {
			continue // a sequence of the target only is none of the link's business
		}
		r.TargetValue = value(s)
	}
	out := make([]SequenceResult, 0, len(values))
	for _, r := range values {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sequence < out[j].Sequence })
	return out
}

// WriteTable writes the report as a table for people.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "table\tmethod\tsource rows\ttarget rows\tchunks\tdiffering\tmissing\textra\tdifferent\ttime\tresult")
	for _, t := range r.Tables {
		result := "identical"
		if t.Differs() {
			result = "DIFFERENT"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1fs\t%s\n", t.Table, t.Method, t.SourceRows, t.TargetRows,
			t.Chunks, t.ChunksDiffering, t.MissingCount, t.ExtraCount, t.DifferentCount, t.Seconds, result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range r.Tables {
		for _, l := range []struct {
			what string
			keys []string
		}{{"missing on the target", t.Missing}, {"extra on the target", t.Extra}, {"different", t.Different}} {
			if len(l.keys) > 0 {
				fmt.Fprintf(w, "%s: %s: %s\n", t.Table, l.what, strings.Join(l.keys, ", "))
			}
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
		if s.TargetValue == nil || *s.TargetValue != *s.SourceValue {
			behind = append(behind, s.Sequence)
		}
	}
	if len(behind) > 0 {
		fmt.Fprintf(w, "sequences not in step (expected while linked; failover sets them): %s\n", strings.Join(behind, ", "))
	}
	verdict := "source and target hold the same data"
	if !r.Equal() {
		verdict = "source and target DIFFER"
	}
	_, err := fmt.Fprintf(w, "%s (%d tables, %.1fs)\n", verdict, len(r.Tables), r.Seconds)
	return err
}
