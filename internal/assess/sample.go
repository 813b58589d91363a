package assess

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Sample is the source's write rate measured over a while.
type Sample struct {
	Seconds float64 `json:"seconds"`
	// WALBytes is the WAL the whole server wrote (pg_current_wal_lsn moved
	// by): what a slot decodes and holds, whichever database wrote it.
	WALBytes       int64   `json:"wal_bytes"`
	WALBytesPerSec float64 `json:"wal_bytes_per_sec"`
	// Commits counts the transactions committed in the source database
	// (pg_stat_database.xact_commit), read-only ones included.
	Commits       int64   `json:"commits"`
	CommitsPerSec float64 `json:"commits_per_sec"`
}

type samplePoint struct {
	lsn     string
	commits int64
	at      time.Time
}

func readPoint(ctx context.Context, conn *pgx.Conn) (samplePoint, error) {
	var p samplePoint
	// A fresh statistics snapshot: within a transaction the server may
	// return cached counters.
	if _, err := conn.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
		return p, fmt.Errorf("source: sample the write rate: %w", err)
	}
	err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text,
		(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()), clock_timestamp()`).
		Scan(&p.lsn, &p.commits, &p.at)
	if err != nil {
		return p, fmt.Errorf("source: sample the write rate: %w", err)
	}
	return p, nil
}

// TakeSample measures the source's write rate over d. The server publishes
// each session's commit counts about once a second (PostgreSQL 15+: when
// the session is idle, at the latest after 10 seconds), so samples shorter
// than ten seconds can miss some.
func TakeSample(ctx context.Context, conn *pgx.Conn, d time.Duration) (Sample, error) {
	first, err := readPoint(ctx, conn)
	if err != nil {
		return Sample{}, err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return Sample{}, fmt.Errorf("source: sample the write rate: %w", ctx.Err())
	case <-t.C:
	}
	last, err := readPoint(ctx, conn)
	if err != nil {
		return Sample{}, err
	}
	var wal int64
	if err := conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::int8`, last.lsn, first.lsn).Scan(&wal); err != nil {
		return Sample{}, fmt.Errorf("source: sample the write rate: %w", err)
	}
	s := Sample{Seconds: last.at.Sub(first.at).Seconds(), WALBytes: wal, Commits: last.commits - first.commits}
	if s.Seconds > 0 {
		s.WALBytesPerSec = float64(s.WALBytes) / s.Seconds
		s.CommitsPerSec = float64(s.Commits) / s.Seconds
	}
	return s, nil
}
