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

	"github.com/pglink/pglink/internal/monitor"
)

// progressEvery spaces a job's progress reports.
const progressEvery = 250 * time.Millisecond

// copyPart streams one part from the source's COPY TO into the target's
// COPY FROM through a pipe, without decoding rows, in one target
// transaction. It returns the rows the target stored and the bytes of the
// stream.
func (c *copier) copyPart(ctx context.Context, job int, src, tgt *pgx.Conn, p *part) (int64, int64, error) {
	srcSQL, tgtSQL := copySQL(p, c.o.TextFormat)
	meter := &meter{job: job, p: p, report: c.o.Progress, start: time.Now()}
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
		} else {
			err = fmt.Errorf("source: %w", err)
		}
		pw.CloseWithError(err) // nil: the reader sees io.EOF
		srcDone <- err
	}()
	rows, err := c.copyIn(ctx, tgt.PgConn(), pr, tgtSQL)
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
func (c *copier) copyIn(ctx context.Context, conn *pgconn.PgConn, r io.Reader, sql string) (int64, error) {
	if _, err := conn.Exec(ctx, "BEGIN READ WRITE; SET LOCAL session_replication_role = replica").ReadAll(); err != nil {
		return 0, fmt.Errorf("target: begin: %w", err)
	}
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
	report  func(monitor.CopyProgress)
	start   time.Time
	last    time.Time
	writes  int64
	bytes   int64
	unTimed int64 // bytes since the clock was last read
}

// The clock is read every meterRows rows or meterBytes bytes, not for
// every row: reading it for each row of a narrow table was a tenth of
// pglink's CPU while seeding.
const (
	meterRows  = 256
	meterBytes = 1 << 20
)

func (m *meter) Write(b []byte) (int, error) {
	n, err := m.w.Write(b)
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
	m.report(monitor.CopyProgress{
		Job: m.job, Table: m.p.table.table.Key(), Part: m.p.label, Rows: rows, Bytes: m.bytes,
		EstBytes: m.p.estBytes, Elapsed: time.Since(m.start), Done: done,
	})
}
