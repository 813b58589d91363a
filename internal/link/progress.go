package link

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/report"
)

// progressWriter sums the copy jobs' reports per table, passes them on to
// the user's display, and writes them to pglink.tables every few seconds so
// pglink status can show them from anywhere.
type progressWriter struct {
	link    string
	forward func(report.CopyProgress)
	mu      sync.Mutex
	parts   map[string]map[string]report.CopyProgress // table -> part -> last report
	dirty   map[string]bool
	stop    chan struct{}
	done    chan struct{}
}

func newProgressWriter(cfg *pgx.ConnConfig, link string, forward func(report.CopyProgress)) *progressWriter {
	p := &progressWriter{link: link, forward: forward, parts: map[string]map[string]report.CopyProgress{},
		dirty: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop(cfg.Copy())
	return p
}

func (p *progressWriter) report(cp report.CopyProgress) {
	p.mu.Lock()
	if p.parts[cp.Table] == nil {
		p.parts[cp.Table] = map[string]report.CopyProgress{}
	}
	p.parts[cp.Table][cp.Part] = cp
	p.dirty[cp.Table] = true
	p.mu.Unlock()
	if p.forward != nil {
		p.forward(cp)
	}
}

// totals returns the rows and bytes copied per changed table since the last call.
func (p *progressWriter) totals() map[string][2]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][2]int64{}
	for table := range p.dirty {
		var rows, bytes int64
		for _, cp := range p.parts[table] {
			rows += cp.Rows
			bytes += cp.Bytes
		}
		out[table] = [2]int64{rows, bytes}
	}
	p.dirty = map[string]bool{}
	return out
}

func (p *progressWriter) loop(cfg *pgx.ConnConfig) {
	defer close(p.done)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if conn == nil {
			conn, _ = pgx.ConnectConfig(ctx, cfg)
		}
		if conn != nil {
			for table, t := range p.totals() {
				// Progress is advisory: a failed write is retried at the next tick.
				if _, err := conn.Exec(ctx, `UPDATE pglink.tables SET rows_copied = $3, bytes_copied = $4
					WHERE link = $1 AND table_schema || '.' || table_name = $2 AND state = 'copying'`,
					p.link, table, t[0], t[1]); err != nil {
					conn.Close(ctx)
					conn = nil
					break
				}
			}
		}
		cancel()
	}
}

func (p *progressWriter) close(ctx context.Context) {
	close(p.stop)
	select {
	case <-p.done:
	case <-ctx.Done():
	}
}
