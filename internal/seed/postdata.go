package seed

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"
)

// parallelTypes are the post-data entries that only need their own table:
// index builds and primary key, unique and exclusion constraints. They may
// run side by side (index builds on one table share its SHARE lock; an
// ADD CONSTRAINT waits for its ACCESS EXCLUSIVE lock). Everything else
// (index attachments to partitioned indexes, foreign keys, triggers, rules,
// policies, comments on indexes) runs after them, in pg_dump's order.
var parallelTypes = map[string]bool{"INDEX": true, "CONSTRAINT": true}

// PostData builds the post-data objects (indexes, constraints, triggers,
// rules, policies) on the target after the copy: indexes and key
// constraints across jobs sessions, then the rest in order. Each statement
// commits on its own, so a rerun after a failure skips what exists
// already (reported in Skipped). A foreign key to a table that was not
// copied is left out and reported.
func PostData(ctx context.Context, o SchemaOptions, jobs int) (Report, error) {
	stmts, rep, conn, err := targetSection(ctx, o, "post-data")
	if err != nil {
		return rep, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var preamble, serial []statement
	var parallel [][]statement
	for i, s := range stmts {
		switch {
		case s.Type == "":
			preamble = append(preamble, s) // SET search_path = '' and the like, before any entry
		case parallelTypes[s.Type]:
			// One pg_dump entry may hold several statements that depend on
			// each other (CREATE INDEX, then REPLICA IDENTITY USING INDEX or
			// CLUSTER ON it): they stay together, in order, in one session.
			if i > 0 && len(parallel) > 0 && sameEntry(stmts[i-1], s) {
				parallel[len(parallel)-1] = append(parallel[len(parallel)-1], s)
			} else {
				parallel = append(parallel, []statement{s})
			}
		default:
			serial = append(serial, s)
		}
	}
	var skipped skipList
	if err := runParallel(ctx, o.Target, preamble, parallel, max(jobs, 1), &skipped); err != nil {
		return rep, err
	}
	for _, s := range append(preamble, serial...) {
		if err := runTolerant(ctx, conn.PgConn(), s, &skipped); err != nil {
			return rep, err
		}
	}
	rep.Skipped = append(rep.Skipped, skipped.list...)
	o.logger().Info("schema post-data copied", "statements", len(stmts), "skipped", len(rep.Skipped))
	return rep, nil
}

// sameEntry reports whether two consecutive statements come from one
// pg_dump entry.
func sameEntry(a, b statement) bool { return a.Type == b.Type && a.Name == b.Name }

func runParallel(ctx context.Context, target string, preamble []statement, units [][]statement, jobs int, skipped *skipList) error {
	if len(units) == 0 {
		return nil
	}
	work := make(chan []statement)
	g, gctx := errgroup.WithContext(ctx)
	for range min(jobs, len(units)) {
		g.Go(func() error {
			conn, err := connectTarget(gctx, target)
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(gctx))
			for _, s := range preamble {
				if err := execStatement(gctx, conn.PgConn(), s); err != nil {
					return fmt.Errorf("target: %s: %w", shortSQL(s), err)
				}
			}
			for unit := range work {
				for _, s := range unit {
					if err := runTolerant(gctx, conn.PgConn(), s, skipped); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(work)
		for _, unit := range units {
			select {
			case work <- unit:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	return g.Wait()
}

// PostgreSQL error codes post-data meets in parallel or on a rerun.
const (
	codeDuplicateTable  = "42P07" // relation (the index) already exists
	codeDuplicateObject = "42710" // constraint or trigger already exists
	codeInvalidTableDef = "42P16" // multiple primary keys
	codeUndefinedTable  = "42P01"
	codeDeadlock        = "40P01" // two parallel builds locked each other
)

// runTolerant runs one post-data statement; it reports instead of failing
// when the object exists already (an earlier, interrupted PostData made
// it) or when a foreign key references a table that is not copied.
func runTolerant(ctx context.Context, conn *pgconn.PgConn, s statement, skipped *skipList) error {
	err := execStatement(ctx, conn, s)
	// Sessions building side by side may deadlock (an ADD CONSTRAINT
	// taking its table's lock while an index build on a partition holds
	// another); PostgreSQL cancels one statement, which simply runs again.
	for try := 0; try < 3 && isCode(err, codeDeadlock); try++ {
		err = execStatement(ctx, conn, s)
	}
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == codeDuplicateTable || pgErr.Code == codeDuplicateObject ||
			(pgErr.Code == codeInvalidTableDef && s.Type == "CONSTRAINT"):
			skipped.add(s.label() + ": exists already")
			return nil
		case pgErr.Code == codeUndefinedTable && s.Type == "FK CONSTRAINT":
			skipped.add(s.label() + ": references a table that is not copied (" + pgErr.Message + ")")
			return nil
		}
	}
	return fmt.Errorf("target: create %s: %w", s.label(), err)
}

// skipList collects reports from parallel sessions.
type skipList struct {
	mu   sync.Mutex
	list []string
}

func (l *skipList) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, s)
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
