package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pglink/pglink/internal/instance"
)

// bigTxn is the setup of figure 5: a link of its own, on a database of
// its own, whose one table takes single huge transactions.
type bigTxn struct {
	pg   pglinkCmd
	link link
}

func newBigTxn(pg pglinkCmd, src, tgt *instance.Instance) *bigTxn {
	return &bigTxn{pg: pg, link: link{name: "bench_bigtxn", src: src, tgt: tgt, srcDB: "bench_bigtxn", tgtDB: "bench_bigtxn"}}
}

func (b *bigTxn) setup(ctx context.Context) error {
	if err := createDB(ctx, b.link.src, b.link.srcDB); err != nil {
		return err
	}
	if err := execSQL(ctx, b.link.src, b.link.srcDB,
		`CREATE TABLE big (id bigint PRIMARY KEY, v text, n numeric)`, markerDDL); err != nil {
		return err
	}
	p, err := b.pg.start(b.link, 2, "")
	if err != nil {
		return err
	}
	defer stopLink(p)
	if err := waitPhase(ctx, p, b.link, "replicating", 5*time.Minute); err != nil {
		return err
	}
	if err := stopLink(p); err != nil {
		return err
	}
	return waitSlotInactive(ctx, b.link.src, b.link.srcDB, b.link.slot(), time.Minute)
}

func (b *bigTxn) teardown(ctx context.Context) error {
	err := b.pg.drop(ctx, b.link)
	if derr := dropDB(ctx, b.link.tgt, b.link.tgtDB); err == nil {
		err = derr
	}
	if derr := dropDB(ctx, b.link.src, b.link.srcDB); err == nil {
		err = derr
	}
	return err
}

// bigTxnRun is one measurement: the peak memory of a fresh pglink process
// that applied one transaction of Rows rows, and the time from the
// transaction's commit on the source until the target had applied it.
type bigTxnRun struct {
	Rows     int
	PeakRSS  int64 // VmHWM of the pglink process
	StartRSS int64 // VmHWM once streaming, before the transaction
	Apply    time.Duration
	Insert   time.Duration // the INSERT on the source
	CPU      cpuUse
}

// run empties the table, starts a fresh pglink process, commits one
// transaction of rows rows on the source, and waits until the target has
// applied it.
func (b *bigTxn) run(ctx context.Context, rows int, profile string) (bigTxnRun, error) {
	r := bigTxnRun{Rows: rows}
	if err := execSQL(ctx, b.link.src, b.link.srcDB, `TRUNCATE big`); err != nil {
		return r, err
	}
	if err := checkpoint(ctx, b.link.src, b.link.tgt); err != nil {
		return r, err
	}
	p, err := b.pg.start(b.link, 2, profile)
	if err != nil {
		return r, err
	}
	defer stopLink(p)
	src, err := connect(ctx, b.link.src, b.link.srcDB)
	if err != nil {
		return r, err
	}
	defer src.Close(context.Background())
	tgt, err := connect(ctx, b.link.tgt, b.link.tgtDB)
	if err != nil {
		return r, err
	}
	defer tgt.Close(context.Background())
	m, err := writeMarker(ctx, src)
	if err != nil {
		return r, err
	}
	if err := waitMarker(ctx, tgt, m, p, 5*time.Minute); err != nil {
		return r, err
	}
	if r.StartRSS, err = peakRSS(p.pid()); err != nil {
		return r, err
	}
	cpu := startCPU(b.link.src, b.link.tgt)
	cpu.client(p.pid())
	start := time.Now()
	if _, err := src.Exec(ctx, `INSERT INTO big SELECT g, md5(g::text), g * 1.5 FROM generate_series(1, $1::int) g`, rows); err != nil {
		return r, fmt.Errorf("insert %d rows: %w", rows, err)
	}
	committed := time.Now()
	r.Insert = committed.Sub(start)
	if m, err = writeMarker(ctx, src); err != nil {
		return r, err
	}
	if err := waitMarker(ctx, tgt, m, p, time.Hour); err != nil {
		return r, err
	}
	r.Apply = time.Since(committed)
	r.CPU = cpu.stop()
	if r.PeakRSS, err = peakRSS(p.pid()); err != nil {
		return r, err
	}
	var n int64
	if err := tgt.QueryRow(ctx, `SELECT count(*) FROM big`).Scan(&n); err != nil {
		return r, err
	}
	if n != int64(rows) {
		return r, fmt.Errorf("target holds %d rows of the %d-row transaction", n, rows)
	}
	if err := stopLink(p); err != nil {
		return r, err
	}
	return r, waitSlotInactive(ctx, b.link.src, b.link.srcDB, b.link.slot(), time.Minute)
}
