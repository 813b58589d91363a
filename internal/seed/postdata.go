package seed

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"
)

// PostData builds the post-data objects (indexes, constraints, triggers,
// rules, policies) on the target after the copy, in two phases. First the
// builds that stand alone (see buildsAlone) run across jobs sessions, with
// more memory for their sorts than PostgreSQL's default (setBuildMemory); then,
// once every one of them has finished, all the other statements run in
// one session in pg_dump's order: whatever refers to an index or
// constraint (replica identity using it, CLUSTER ON, index attachments to
// partitioned indexes, statistics targets, comments, constraints using an
// index), foreign keys, triggers, rules and policies. Each statement
// commits on its own, so a rerun after a failure skips what exists
// already (reported in Skipped). A foreign key to a table that was not
// copied is left out and reported.
func PostData(ctx context.Context, o SchemaOptions, jobs int) (Report, error) {
	stmts, rep, conn, err := targetSection(ctx, o, "post-data")
	if err != nil {
		return rep, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if len(o.Built) > 0 {
		kept := stmts[:0]
		for _, s := range stmts {
			if s.Type == "" || !o.Built[s.SQL] {
				kept = append(kept, s)
			}
		}
		stmts = kept
	}
	preamble, parallel, serial := splitPostData(stmts)
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

// splitPostData sorts post-data statements into the preamble (the SET
// commands before any entry, run first in every session), the builds that
// may run side by side, and the rest, which keeps pg_dump's order.
func splitPostData(stmts []statement) (preamble, parallel, serial []statement) {
	for _, s := range stmts {
		switch {
		case s.Type == "":
			preamble = append(preamble, s)
		case buildsAlone(s):
			parallel = append(parallel, s)
		default:
			serial = append(serial, s)
		}
	}
	return preamble, parallel, serial
}

// Identifiers and the statements that build an object on their own.
const sqlNamePat = `(?:"(?:[^"]|"")+"|[A-Za-z_\x80-\x{10FFFF}][A-Za-z0-9_$\x80-\x{10FFFF}]*)`

var (
	createIndexRE = regexp.MustCompile(`(?is)^CREATE\s+(?:UNIQUE\s+)?INDEX\s`)
	// Compiled on first use: its Unicode ranges make it slow to build, and
	// every pglink command would pay for it at start otherwise.
	addConstraintRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+(?:ONLY\s+)?` + sqlNamePat + `(?:\s*\.\s*` + sqlNamePat + `)?` +
			`\s+ADD\s+CONSTRAINT\s+` + sqlNamePat + `\s+(?:PRIMARY\s+KEY|UNIQUE|EXCLUDE)\b(.*)$`)
	})
	usingIndexRE = regexp.MustCompile(`(?is)^\s*USING\s+INDEX\s`)
)

// buildsAlone reports whether a post-data statement depends on nothing
// else of the post-data section, so that it may run in any session, side
// by side with the others: the CREATE INDEX of an index entry, or the
// ADD CONSTRAINT of a primary key, unique or exclusion constraint that
// builds its own index. A partitioned table's index or constraint is
// built ON ONLY that table; its partitions' are separate builds, and
// attaching them (ALTER INDEX ... ATTACH PARTITION) waits for the second
// phase. Everything else that pg_dump writes in an index or constraint
// entry refers to the index it builds (REPLICA IDENTITY USING INDEX,
// CLUSTER ON, ALTER INDEX ... SET STATISTICS), as does a constraint
// made USING INDEX: these run after all builds have finished.
func buildsAlone(s statement) bool {
	switch s.Type {
	case "INDEX":
		return createIndexRE.MatchString(s.SQL)
	case "CONSTRAINT":
		m := addConstraintRE().FindStringSubmatch(s.SQL)
		return m != nil && !usingIndexRE.MatchString(m[1])
	}
	return false
}

// runParallel runs independent statements across jobs sessions and
// returns when all have finished. Index builds on one table share its
// SHARE lock; an ADD CONSTRAINT waits for its ACCESS EXCLUSIVE lock.
func runParallel(ctx context.Context, target string, preamble, stmts []statement, jobs int, skipped *skipList) error {
	if len(stmts) == 0 {
		return nil
	}
	work := make(chan statement)
	g, gctx := errgroup.WithContext(ctx)
	sessions := min(jobs, len(stmts))
	for range sessions {
		g.Go(func() error {
			conn, err := connectTarget(gctx, target)
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(gctx))
			if err := setBuildMemory(gctx, conn, sessions); err != nil {
				return err
			}
			for _, s := range preamble {
				if err := execStatement(gctx, conn.PgConn(), s); err != nil {
					return fmt.Errorf("target: %s: %w", shortSQL(s), err)
				}
			}
			for s := range work {
				if err := runTolerant(gctx, conn.PgConn(), s, skipped); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(work)
		for _, s := range stmts {
			select {
			case work <- s:
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
