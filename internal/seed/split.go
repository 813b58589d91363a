package seed

import (
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/endpoint"
)

// splitCores is how many cores the servers need for a split table's
// parts to copy faster than the whole table in one stream. One stream
// keeps about one and a half cores busy (the target's COPY FROM about one,
// the source's COPY TO and pglink's pipe the rest; measured with pgbench
// data, bench/README.md), so a second stream needs at least four.
const splitCores = 4

// splitFor decides the size above which a table is copied in ranges,
// when the caller left it to pglink (SplitBytes 0). Ranges copy side by
// side, but only a table copied whole is loaded frozen (COPY FREEZE), so
// that neither its index builds nor its first readers rewrite every page
// to set hint bits: at pgbench scale 200 that pass added 1.4 s of 7 s to
// the primary key's build. When both servers run on pglink's own machine,
// its cores are theirs, and with fewer than splitCores of them the ranges
// only take turns on the same cores: tables are copied whole. Otherwise
// the servers' cores are unknown, and a big table is split at
// DefaultSplitBytes so that the jobs share it. why says so when tables
// are kept whole.
func splitFor(src, tgt *pgx.ConnConfig, cores int) (bytes int64, why string) {
	if cores >= splitCores || src == nil || tgt == nil || !endpoint.IsLocalHost(src.Host) || !endpoint.IsLocalHost(tgt.Host) {
		return DefaultSplitBytes, ""
	}
	return math.MaxInt64, fmt.Sprintf("both servers run on this machine, whose %d cores one stream keeps busy: every table is copied whole, and loaded frozen", cores)
}
