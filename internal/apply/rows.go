package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/pglink/pglink/internal/change"
)

// table returns rel's target table, mapping it at first sight. Mapping
// reads the target's catalog, so the pipeline is flushed first.
func (r *run) table(ctx context.Context, rel *change.Relation) (*table, error) {
	if rel == nil {
		return nil, fmt.Errorf("row change without a relation")
	}
	if t, ok := r.plan.known(rel); ok {
		return t, nil
	}
	// A new announcement of a folded table must not overtake the
	// changes folded under the old one.
	if err := r.tr.settleInflight(ctx); err != nil {
		return nil, err
	}
	if err := r.tr.flushFold(ctx); err != nil {
		return nil, err
	}
	if err := r.tr.snd.flush(); err != nil {
		return nil, err
	}
	t, err := loadTable(ctx, r.tr.conn(), rel)
	if err != nil {
		return nil, fmt.Errorf("at source %s: %w", r.txnAt, err)
	}
	r.plan.add(rel, t)
	return t, nil
}

// synced reports whether the seeding copy of t already holds changes of
// the source transaction committed at lsn: native table sync applies a
// table's changes only from its sync position on.
func (r *run) synced(t *table, lsn change.LSN) bool {
	if r.a.opts.SyncLSN == nil {
		return false
	}
	at, ok := r.a.opts.SyncLSN(t.key)
	return ok && lsn < at
}

// rowChange queues an INSERT, UPDATE or DELETE as a prepared statement.
func (r *run) rowChange(ctx context.Context, c *change.Change) error {
	if r.skipTxn {
		r.skipped++
		return nil
	}
	t, err := r.table(ctx, c.Rel)
	if err != nil {
		return err
	}
	if r.synced(t, c.CommitLSN) {
		r.skipped++
		return nil
	}
	if _, err := shapeOf(&r.shape, t, c); err != nil {
		return fmt.Errorf("apply %s %s %s at source %s: %w", c.Kind, preposition(c.Kind), t.quoted, c.CommitLSN, err)
	}
	r.batchRows++
	if c.Kind == change.Update && len(r.shape.setCols) == 0 {
		return nil // every value is an unchanged TOASTed one: nothing to write
	}
	if t.foldable && !r.a.opts.RowByRow {
		res := r.tr.addToFold(t, c)
		if res == conflicting {
			if err := r.tr.flushFold(ctx); err != nil {
				return err
			}
			res = r.tr.addToFold(t, c)
		}
		if res == foldTaken {
			if r.tr.fold.full() {
				return r.tr.flushFold(ctx)
			}
			return nil
		}
	}
	if t.foldable || t.fires {
		// A table's changes stay in order; a table whose triggers fire
		// sees every change before its own applied.
		if err := r.tr.flushFold(ctx); err != nil {
			return err
		}
	}
	if err := r.tr.ensureBegun(ctx); err != nil {
		return err
	}
	return r.tr.rowStatement(ctx, t, c)
}

// truncate queues one TRUNCATE of every listed table that the seeding
// copy does not already reflect.
func (r *run) truncate(ctx context.Context, c *change.Change) error {
	if r.skipTxn {
		r.skipped++
		return nil
	}
	var tables []*table
	var names []string
	for _, rel := range c.Truncated {
		t, err := r.table(ctx, rel)
		if err != nil {
			return err
		}
		if !r.synced(t, c.CommitLSN) {
			tables = append(tables, t)
			names = append(names, t.quoted)
		}
	}
	if len(tables) == 0 {
		r.skipped++
		return nil
	}
	if err := r.tr.flushFold(ctx); err != nil {
		return err
	}
	if err := r.tr.ensureBegun(ctx); err != nil {
		return err
	}
	r.batchRows++
	r.tr.snd.control(ctx, truncateSQL(tables, c.Cascade, c.RestartIdentity), nil, nil,
		"apply TRUNCATE of "+strings.Join(names, ", "), c.CommitLSN)
	return nil
}
