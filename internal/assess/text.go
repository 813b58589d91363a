package assess

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteText prints the report for a person: the two sides, every finding
// with its remedy and SQL, the sample and estimate, and the verdict.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	writeServer(&b, "source", r.Source)
	if r.Target != nil {
		writeServer(&b, "target", *r.Target)
	}
	b.WriteString("\n")
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "%-8s %-7s %s\n", strings.ToUpper(string(f.Severity)), f.Side, f.What)
		if f.Remedy != "" {
			fmt.Fprintf(&b, "%17sfix: %s\n", "", f.Remedy)
		}
		if len(f.SQL) > 0 && !strings.Contains(f.Remedy, f.SQL[0]) {
			for _, s := range f.SQL {
				fmt.Fprintf(&b, "%17s  %s\n", "", s)
			}
		}
	}
	if r.Sample != nil {
		s := r.Sample
		fmt.Fprintf(&b, "\nsample over %.0f seconds: %s of WAL (%s/s), %d commits (%.1f/s)\n",
			s.Seconds, formatBytes(s.WALBytes), formatBytes(int64(s.WALBytesPerSec)), s.Commits, s.CommitsPerSec)
	}
	if e := r.Estimate; e != nil {
		fmt.Fprintf(&b, "estimate: seeding takes %s and the slot holds about %s of WAL meanwhile; target: %s of storage, %s of memory, %d cores\n",
			formatDuration(e.SeedSeconds), formatBytes(e.WALDuringSeedBytes), formatBytes(e.TargetStorageBytes),
			formatBytes(e.TargetMemoryBytes), e.TargetCores)
		for _, line := range e.Reasoning {
			fmt.Fprintf(&b, "  - %s\n", line)
		}
	}
	infos := len(r.Findings) - r.Blockers - r.Warnings
	fmt.Fprintf(&b, "\n%d blockers, %d warnings, %d notes: ", r.Blockers, r.Warnings, infos)
	if r.Blocked() {
		b.WriteString("pglink start would refuse to start; fix the blockers first.\n")
	} else {
		b.WriteString("nothing blocks a link.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeServer(b *strings.Builder, side string, s Server) {
	fmt.Fprintf(b, "%s  %s  PostgreSQL %s", side, s.Address, s.Version)
	if s.DatabaseExists {
		fmt.Fprintf(b, ", database %s: %s, %s, LC_COLLATE %s", s.Database, formatBytes(s.SizeBytes), s.Encoding, s.Collate)
	} else {
		fmt.Fprintf(b, ", database %s does not exist yet (it would get %s, LC_COLLATE %s)", s.Database, s.Encoding, s.Collate)
	}
	b.WriteString("\n")
}

// WriteJSON prints the report as one JSON object; lists are never null.
func (r Report) WriteJSON(w io.Writer) error {
	r.Findings = nonNil(r.Findings)
	for i := range r.Findings {
		r.Findings[i].SQL = nonNil(r.Findings[i].SQL)
	}
	if r.Estimate != nil {
		e := *r.Estimate
		e.Reasoning = nonNil(e.Reasoning)
		r.Estimate = &e
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
