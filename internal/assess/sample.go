package assess

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/wait"
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

// readPoint reads the WAL position and the database's commit count. On
// PostgreSQL 15+ the session first flushes its own pending statistics
// (pg_stat_force_next_flush takes effect when the statement ends), so the
// checks that ran before do not land inside the sample. Each statement is
// its own transaction, so the counters are read fresh; the simple query
// protocol keeps it one transaction (a prepare would be another).
func readPoint(ctx context.Context, conn *pgx.Conn, flush bool) (samplePoint, error) {
	var p samplePoint
	if flush {
		if _, err := conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`, pgx.QueryExecModeSimpleProtocol); err != nil {
			return p, fmt.Errorf("source: sample the write rate: %w", err)
		}
	}
	err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text,
		(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()), clock_timestamp()`,
		pgx.QueryExecModeSimpleProtocol).
		Scan(&p.lsn, &p.commits, &p.at)
	if err != nil {
		return p, fmt.Errorf("source: sample the write rate: %w", err)
	}
	return p, nil
}

// TakeSample measures the source's write rate over d. Sessions publish
// their commit counts at most once a second, and an idle one up to 10
// seconds late (PostgreSQL 15+; 0.5 seconds before), so short samples can
// be off by what a session published late. The sample's own transactions
// are not counted.
func TakeSample(ctx context.Context, conn *pgx.Conn, d time.Duration) (Sample, error) {
	var version int
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return Sample{}, fmt.Errorf("source: sample the write rate: %w", err)
	}
	flush := version >= 150000
	// Between the two readings this session commits the first reading and,
	// on 15+, the flush before the second.
	own := int64(1)
	if flush {
		own = 2
	}
	first, err := readPoint(ctx, conn, flush)
	if err != nil {
		return Sample{}, err
	}
	if err := wait.Sleep(ctx, d); err != nil {
		return Sample{}, fmt.Errorf("source: sample the write rate: %w", err)
	}
	last, err := readPoint(ctx, conn, flush)
	if err != nil {
		return Sample{}, err
	}
	var wal int64
	if err := conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::int8`, last.lsn, first.lsn).Scan(&wal); err != nil {
		return Sample{}, fmt.Errorf("source: sample the write rate: %w", err)
	}
	s := Sample{Seconds: last.at.Sub(first.at).Seconds(), WALBytes: wal, Commits: max(0, last.commits-first.commits-own)}
	if s.Seconds > 0 {
		s.WALBytesPerSec = float64(s.WALBytes) / s.Seconds
		s.CommitsPerSec = float64(s.Commits) / s.Seconds
	}
	return s, nil
}
