package validate

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/quote"
)

// compareSchema compares the tables' columns and the sequences on both
// sides, and returns per table found on both sides the columns both have,
// in the source's order: the rows are compared on those. A table with
// none (no columns at all, or none of the same type) is still in the map:
// its rows are counted.
func compareSchema(ctx context.Context, s *sides, o Options, rep *Report) (map[string][]string, error) {
	var tgtTables []catalog.Table
	var srcSeqs, tgtSeqs []catalog.Sequence
	err := both(ctx, s, func(ctx context.Context, side string, conn *pgx.Conn) error {
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
	common := compareColumns(o.Tables, tgtTables, rep)
	compareSequences(o.Tables, srcSeqs, tgtSeqs, rep)
	return common, nil
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
			rep.OnlySource = append(rep.OnlySource, tableName(st))
			continue
		}
		common[st.Key()] = []string{}
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
				rep.OnlySource = append(rep.OnlySource, quote.Name(st.Schema, st.Name, c.Name))
			case typ != c.Type:
				rep.Different = append(rep.Different, fmt.Sprintf("%s: %s on the source, %s on the target",
					quote.Name(st.Schema, st.Name, c.Name), c.Type, typ))
			default:
				common[st.Key()] = append(common[st.Key()], c.Name)
			}
		}
		for _, c := range tt.Columns {
			if !seen[c.Name] {
				rep.OnlyTarget = append(rep.OnlyTarget, quote.Name(st.Schema, st.Name, c.Name))
			}
		}
	}
	return common
}

// compareSequences compares the sequences that belong to the compared
// tables (serial and identity columns) and those that belong to no table.
// A value that differs is information (the link does not carry sequences;
// a failover sets them); a sequence on one side only is a difference.
func compareSequences(tables []catalog.Table, src, tgt []catalog.Sequence, rep *Report) {
	ours := map[string]bool{"": true}
	for _, t := range tables {
		ours[t.Key()] = true
	}
	onTarget := map[string]catalog.Sequence{}
	for _, s := range tgt {
		onTarget[s.Key()] = s
	}
	seen := map[string]bool{}
	for _, s := range src {
		if !ours[s.OwnedBy] {
			continue
		}
		seen[s.Key()] = true
		r := SequenceResult{Sequence: quote.Name(s.Schema, s.Name), SourceValue: sequenceValue(s)}
		t, ok := onTarget[s.Key()]
		switch {
		case !ok:
			r.Note = "missing on the target"
			rep.OnlySource = append(rep.OnlySource, r.Sequence)
		case *sequenceValue(t) != *r.SourceValue:
			r.TargetValue = sequenceValue(t)
			r.Note = "not in step: expected while the link replicates; failover sets target sequences"
		default:
			r.TargetValue = sequenceValue(t)
		}
		rep.Sequences = append(rep.Sequences, r)
	}
	for _, t := range tgt {
		if t.OwnedBy != "" && ours[t.OwnedBy] && !seen[t.Key()] {
			name := quote.Name(t.Schema, t.Name)
			rep.OnlyTarget = append(rep.OnlyTarget, name)
			rep.Sequences = append(rep.Sequences, SequenceResult{Sequence: name, TargetValue: sequenceValue(t), Note: "missing on the source"})
		}
	}
	sort.Slice(rep.Sequences, func(i, j int) bool { return rep.Sequences[i].Sequence < rep.Sequences[j].Sequence })
}

// sequenceValue is the value the next nextval() follows.
func sequenceValue(s catalog.Sequence) *int64 {
	v := s.LastValue
	if !s.IsCalled {
		v--
	}
	return &v
}
