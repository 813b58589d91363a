package seed

import (
	"context"
)

// SectionDump is a pg_dump of one schema section run in the background,
// so that its time (pg_dump's start and its catalog reads, about half a
// second even on a small database) overlaps the copy instead of adding to
// the seeding. EarlyBuilds and PostData read it.
type SectionDump struct {
	section string
	done    chan struct{}
	stmts   []statement
	rep     Report
	err     error
}

// DumpAhead starts pg_dump of section in the background. With
// o.Snapshot set, the dump reads the schema as of that snapshot: its
// exporting session must stay open until Done is closed.
func DumpAhead(ctx context.Context, o SchemaOptions, section string) *SectionDump {
	d := &SectionDump{section: section, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		d.stmts, d.rep, d.err = dumpSection(ctx, o, section)
	}()
	return d
}

// Done is closed once the dump has finished, well or not.
func (d *SectionDump) Done() <-chan struct{} { return d.done }

// result waits for the dump. A dump that failed is made again now: its
// error may have been the snapshot's session, ended early by a failed
// copy, and a fresh dump's error is the one to report.
func (d *SectionDump) result(ctx context.Context, o SchemaOptions) ([]statement, Report, error) {
	select {
	case <-d.done:
	case <-ctx.Done():
		return nil, Report{}, ctx.Err()
	}
	if d.err != nil {
		o.Snapshot = ""
		o.logger().Debug("dumping the schema again", "section", d.section, "earlier_error", d.err)
		return dumpSection(ctx, o, d.section)
	}
	return append([]statement(nil), d.stmts...), d.rep, nil
}
