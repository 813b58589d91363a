package apply

import (
	"context"
	"fmt"

	"github.com/pglink/pglink/internal/change"
)

// Statement is one statement of a schema change (see
// Options.SchemaChange), with its text parameters.
type Statement struct {
	SQL  string
	Args []string
	What string // for errors: what the statement does
}

// SchemaChangeError is a schema change of the source that the target
// refused, or that Options.SchemaChange stopped at. Nothing of its source
// transaction is applied.
type SchemaChangeError struct {
	At  change.LSN // the message's position in the source's WAL
	Err error
}

func (e *SchemaChangeError) Error() string {
	return fmt.Sprintf("the source's schema change at %s: %v", e.At, e.Err)
}

func (e *SchemaChangeError) Unwrap() error { return e.Err }

// message applies a logical message of the open source transaction: a
// schema change of the source runs on the target right there, after the
// changes before it and before those after it, in the target transaction
// that commits the source transaction with its origin position, so that a
// crash neither loses nor repeats it. The tables are read again at their
// next change: the stream announces the changed ones anew, but a table's
// mapping and statements also depend on what the target has (types,
// keys, triggers).
func (l *loop) message(ctx context.Context, c *change.Change) error {
	if !l.inTxn || l.skipTxn || l.a.opts.SchemaChange == nil {
		return nil
	}
	stmts, err := l.a.opts.SchemaChange(ctx, c)
	if err != nil {
		return &SchemaChangeError{At: c.MessageLSN, Err: err}
	}
	if len(stmts) == 0 {
		return nil
	}
	if err := l.tr.flushFold(ctx); err != nil {
		return err
	}
	if err := l.tr.ensureBegun(ctx); err != nil {
		return err
	}
	for _, st := range stmts {
		args := make([][]byte, len(st.Args))
		for i, a := range st.Args {
			args[i] = []byte(a)
		}
		l.tr.snd.control(ctx, st.SQL, args, nil, st.What, c.CommitLSN)
	}
	if err := l.tr.snd.flush(); err != nil {
		return &SchemaChangeError{At: c.MessageLSN, Err: fmt.Errorf("target: %w", err)}
	}
	l.plan.forget()
	l.schemaTxn = true
	return nil
}
