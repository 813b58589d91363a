package seed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/quote"
	"github.com/pglink/pglink/internal/report"
)

// progressEvery spaces a job's progress reports.
const progressEvery = 250 * time.Millisecond

// copyPart streams one part from the source's COPY TO into the target's
// COPY FROM through a pipe, without decoding rows, in one target
// transaction. It returns the rows the target stored and the bytes of the
// stream.
func (c *copier) copyPart(ctx context.Context, job int, src, tgt *pgx.Conn, p *part) (int64, int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	meter := &meter{job: job, p: p, report: c.o.Progress, start: time.Now()}
	defer watchStall(ctx, cancel, &meter.flow, "the copy of table "+p.table.table.Key()+partSuffix(p), c.o.StallTimeout)()
	rows, bytes, err := c.pipePart(ctx, src, tgt, p, meter)
	return rows, bytes, stallCause(ctx, err)
}

// pipePart is copyPart's stream, under its watch.
func (c *copier) pipePart(ctx context.Context, src, tgt *pgx.Conn, p *part, meter *meter) (int64, int64, error) {
	srcSQL, _ := copySQL(p, c.o.TextFormat, false)
	pr, pw := io.Pipe()
	// A buffer between the pipe and COPY TO, which writes one row per
	// call, so the target receives large CopyData messages.
	buf := bufio.NewWriterSize(pw, 256<<10)
	meter.w = buf
	srcDone := make(chan error, 1)
	go func() {
		_, err := src.PgConn().CopyTo(ctx, meter, srcSQL)
		if err == nil {
			err = buf.Flush()
			meter.flow.srcDone.Store(true)
		} else {
			err = fmt.Errorf("source: %w", err)
		}
		pw.CloseWithError(err) // nil: the reader sees io.EOF
		srcDone <- err
	}()
	rows, err := c.copyIn(ctx, tgt.PgConn(), pr, p)
	if err != nil {
		pr.CloseWithError(errTargetFailed) // unblocks COPY TO, which then fails too
		if srcErr := <-srcDone; srcErr != nil && !errors.Is(srcErr, errTargetFailed) {
			return 0, 0, srcErr // the source failed first; the target only saw its stream end
		}
		return 0, 0, err
	}
	if err := <-srcDone; err != nil {
		return 0, 0, err
	}
	meter.finish(rows)
	return rows, meter.bytes, nil
}

var errTargetFailed = errors.New("the target stopped reading")

// copyIn runs COPY FROM in a transaction of its own, so the part is on the
// target entirely or not at all. session_replication_role = replica keeps
// triggers (pglink's write guard among them) and foreign key checks off.
// A part that is a whole table is loaded frozen when the table can be
// emptied first in the same transaction (see emptyForFreeze).
func (c *copier) copyIn(ctx context.Context, conn *pgconn.PgConn, r io.Reader, p *part) (int64, error) {
	if _, err := conn.Exec(ctx, "BEGIN READ WRITE; SET LOCAL session_replication_role = replica").ReadAll(); err != nil {
		return 0, fmt.Errorf("target: begin: %w", err)
	}
	freeze := false
	if p.alone {
		var err error
		if freeze, err = c.emptyForFreeze(ctx, conn, p.table.table.QualifiedName()); err != nil {
			rollback(ctx, conn)
			return 0, err
		}
	}
	_, sql := copySQL(p, c.o.TextFormat, freeze)
	tag, err := conn.CopyFrom(ctx, r, sql)
	if err != nil {
		rollback(ctx, conn)
		return 0, fmt.Errorf("target: %w", err)
	}
	if _, err := conn.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		return 0, fmt.Errorf("target: commit: %w", err)
	}
	return tag.RowsAffected(), nil
}

// emptyForFreeze empties table in the open transaction, so that COPY may
// load it frozen (FREEZE): its rows are then visible to all and need no
// hint bits, so the first scan after the copy (the index builds, the
// first query, the first vacuum) does not write every page again. The
// table is empty already (a copy that starts again empties its tables
// first); the TRUNCATE is what FREEZE asks for. It takes an exclusive lock
// until the copy commits, so it waits at most a second for the target's
// readers, and when it cannot (a reader, a foreign key pointing at the
// table, a partitioned or foreign table), it is undone and the copy goes
// on unfrozen. It reports whether the table was emptied.
func (c *copier) emptyForFreeze(ctx context.Context, conn *pgconn.PgConn, table string) (bool, error) {
	sql := fmt.Sprintf(`SAVEPOINT pglink_freeze;
SET LOCAL lock_timeout = '1s';
DO $pglink$ BEGIN
	IF (SELECT relkind FROM pg_class WHERE oid = %s::regclass) <> 'r' THEN RAISE EXCEPTION 'not an ordinary table'; END IF;
END $pglink$;
TRUNCATE ONLY %s;
SET LOCAL lock_timeout TO DEFAULT;
RELEASE SAVEPOINT pglink_freeze`, quote.Literal(table), table)
	_, err := conn.Exec(ctx, sql).ReadAll()
	if err == nil {
		return true, nil
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if _, rerr := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT pglink_freeze").ReadAll(); rerr != nil {
		return false, fmt.Errorf("target: %w (and then: %w)", err, rerr)
	}
	c.o.Logger.Debug("copying without FREEZE", "table", table, "reason", err)
	return false, nil
}

func rollback(ctx context.Context, conn *pgconn.PgConn) {
	if conn.IsClosed() {
		return
	}
	_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK").ReadAll()
}

// meter counts the COPY stream on its way and sends progress reports.
// COPY TO sends one CopyData message per row, so the count of writes is
// the count of rows, give or take the binary header and trailer.
type meter struct {
	w       io.Writer
	job     int
	p       *part
	report  func(report.CopyProgress)
	start   time.Time
	last    time.Time
	writes  int64
	bytes   int64
	unTimed int64 // bytes since the clock was last read
	flow    flow  // what the stall watch sees
}

// The clock is read every meterRows rows or meterBytes bytes, not for
// every row: for a narrow table the clock would cost more than the row.
const (
	meterRows  = 256
	meterBytes = 1 << 20
)

func (m *meter) Write(b []byte) (int, error) {
	m.flow.writing.Store(true)
	n, err := m.w.Write(b)
	m.flow.writing.Store(false)
	m.flow.bytes.Add(int64(n))
	m.bytes += int64(n)
	m.unTimed += int64(n)
	m.writes++
	if m.report != nil && (m.writes%meterRows == 0 || m.unTimed >= meterBytes) {
		m.unTimed = 0
		if time.Since(m.last) >= progressEvery {
			m.last = time.Now()
			m.send(m.writes, false)
		}
	}
	return n, err
}

func (m *meter) finish(rows int64) {
	if m.report != nil {
		m.send(rows, true)
	}
}

func (m *meter) send(rows int64, done bool) {
	m.report(report.CopyProgress{
		Job: m.job, Table: m.p.table.table.Key(), Part: m.p.label, Rows: rows, Bytes: m.bytes,
		EstBytes: m.p.estBytes, Elapsed: time.Since(m.start), Done: done,
	})
}
