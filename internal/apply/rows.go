package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/pglink/pglink/internal/change"
)

// table returns rel's target table, mapping it at first sight. Mapping
// reads the target's catalog, so the pipeline is flushed first.
func (l *loop) table(ctx context.Context, rel *change.Relation) (*table, error) {
	if rel == nil {
		return nil, fmt.Errorf("row change without a relation")
	}
	if t, ok := l.plan.known(rel); ok {
		return t, nil
	}
	// A new announcement of a folded table must not overtake the
	// changes folded under the old one.
	if err := l.tr.drain(ctx); err != nil {
		return nil, err
	}
	if err := l.tr.flushFold(ctx); err != nil {
		return nil, err
	}
	if err := l.tr.snd.flush(); err != nil {
		return nil, err
	}
	t, err := loadTable(ctx, l.tr.conn(), rel)
	if err != nil {
		return nil, fmt.Errorf("at source %s: %w", l.txnAt, err)
	}
	l.plan.add(rel, t)
	return t, nil
}

// synced reports whether the seeding copy of t already holds changes of
// the source transaction committed at lsn: native table sync applies a
// table's changes only from its sync position on.
func (l *loop) synced(ctx context.Context, t *table, lsn change.LSN) (bool, error) {
	if j := l.a.opts.Joining; j != nil {
		skip, handled, err := j(ctx, t.key, lsn)
		if err != nil || handled {
			return skip, err
		}
	}
	if l.a.opts.SyncLSN == nil {
		return false, nil
	}
	at, ok := l.a.opts.SyncLSN(t.key)
	return ok && lsn < at, nil
}

// rowChange folds an INSERT, UPDATE or DELETE into the open batch, or
// queues it as its own prepared statement. Its shape is computed here
// only and goes with it (into the fold, for the fallback), so the shape
// checked here is the one its statement is built from.
func (l *loop) rowChange(ctx context.Context, c *change.Change) error {
	if l.skipTxn {
		l.skipped++
		return nil
	}
	t, err := l.table(ctx, c.Rel)
	if err != nil {
		return err
	}
	if skip, err := l.synced(ctx, t, c.CommitLSN); err != nil || skip {
		if skip {
			l.skipped++
		}
		return err
	}
	if err := checkBinary(t, c); err != nil {
		return err
	}
	where, err := shapeOf(&l.shape, t, c)
	if err != nil {
		return fmt.Errorf("apply %s %s %s at source %s: %w", c.Kind, preposition(c.Kind), t.quoted, c.CommitLSN, err)
	}
	l.batchRows++
	l.batchKinds.add(c.Kind)
	if c.Kind == change.Update && len(l.shape.setCols) == 0 {
		return nil // every value is an unchanged TOASTed one: nothing to write
	}
	if t.foldable && !l.a.opts.RowByRow {
		res := l.tr.addToFold(t, c, &l.shape, where)
		if res == conflicting {
			if err := l.tr.flushFold(ctx); err != nil {
				return err
			}
			res = l.tr.addToFold(t, c, &l.shape, where)
		}
		if res == foldTaken {
			if l.tr.fold.full() {
				return l.tr.flushFold(ctx)
			}
			return nil
		}
	}
	if t.foldable || t.fires {
		// A table's changes stay in order; a table whose triggers fire
		// sees every change before its own applied.
		if err := l.tr.flushFold(ctx); err != nil {
			return err
		}
	}
	if err := l.tr.ensureBegun(ctx); err != nil {
		return err
	}
	return l.tr.rowStatement(ctx, t, c, &l.shape, where)
}

// truncate queues one TRUNCATE of every listed table that the seeding
// copy does not already reflect.
func (l *loop) truncate(ctx context.Context, c *change.Change) error {
	if l.skipTxn {
		l.skipped++
		return nil
	}
	var tables []*table
	var names []string
	for _, rel := range c.Truncated {
		t, err := l.table(ctx, rel)
		if err != nil {
			return err
		}
		skip, err := l.synced(ctx, t, c.CommitLSN)
		if err != nil {
			return err
		}
		if !skip {
			tables = append(tables, t)
			names = append(names, t.quoted)
		}
	}
	if len(tables) == 0 {
		l.skipped++
		return nil
	}
	if err := l.tr.flushFold(ctx); err != nil {
		return err
	}
	if err := l.tr.ensureBegun(ctx); err != nil {
		return err
	}
	l.batchRows++
	l.batchKinds.add(change.Truncate)
	l.tr.snd.control(ctx, truncateSQL(tables, c.Cascade, c.RestartIdentity), nil, nil,
		"apply TRUNCATE of "+strings.Join(names, ", "), c.CommitLSN)
	return nil
}

// kindCounts counts a batch's changes by kind: inserts, updates, deletes,
// truncates (Stats has them by name).
type kindCounts [4]int64

func (k *kindCounts) add(kind change.Kind) {
	if kind >= change.Insert && kind <= change.Truncate {
		k[kind-change.Insert]++
	}
}
