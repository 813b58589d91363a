package validate

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// Type OIDs of the integer types whose key ranges can be cut by arithmetic.
const (
	oidInt8 = 20
	oidInt2 = 21
	oidInt4 = 23
)

func isIntegerType(oid uint32) bool {
	return oid == oidInt2 || oid == oidInt4 || oid == oidInt8
}

// intRangeChunks cuts the key range of a table whose key is one integer
// column into chunks of equal width, about n rows each by the table's row
// count. Its two ends come from the key's index (min and max), so no scan
// of the key is needed, unlike the window over all rows that other keys
// take. The row count is the planner's estimate, which scales the last
// analyzed density by the table's current size. The first chunk is open below and the last open above, so keys
// outside the source's range (rows only the target holds) are compared
// too. With gaps in the keys, chunks hold fewer rows, never fewer keys.
func (k keyed) intRangeChunks(ctx context.Context, src *pgx.Conn, n int) ([]chunk, error) {
	var lo, hi *int64
	q := fmt.Sprintf(`SELECT min(%[1]s)::bigint, max(%[1]s)::bigint FROM %[2]s t`, k.keyCols[0], k.table)
	if err := src.QueryRow(ctx, q).Scan(&lo, &hi); err != nil {
		return nil, fmt.Errorf("source: read the key's range: %w", err)
	}
	if lo == nil {
		return []chunk{{}}, nil // empty: one chunk, open at both ends
	}
	rows, err := estimateRows(ctx, src, k.table)
	if err != nil {
		return nil, err
	}
	return cutRange(*lo, *hi, rows, int64(n)), nil
}

// cutRange cuts [lo, hi] into about rows/n chunks of equal width, the
// first open below and the last open above. Offsets from lo are unsigned,
// so the whole int64 range is cut without overflow.
func cutRange(lo, hi, rows, n int64) []chunk {
	span := uint64(hi) - uint64(lo) // hi - lo, exact in uint64
	parts := uint64(max((rows+n-1)/max(n, 1), 1))
	width := span/parts + 1
	out := make([]chunk, 0, parts)
	var prev []string
	for off := width; off <= span; off += width {
		if off < width { // wrapped around
			break
		}
		b := []string{strconv.FormatInt(int64(uint64(lo)+off), 10)}
		out = append(out, chunk{lo: prev, hi: b})
		prev = b
	}
	return append(out, chunk{lo: prev})
}

// estimateRows is the planner's estimate of a table's rows: pg_class's
// density scaled by the table's current number of pages, so a table that
// grew since it was last analyzed is not taken for a small one.
func estimateRows(ctx context.Context, conn *pgx.Conn, table string) (int64, error) {
	var js []byte
	if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) SELECT 1 FROM "+table).Scan(&js); err != nil {
		return 0, fmt.Errorf("source: estimate rows: %w", err)
	}
	var plan []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal(js, &plan); err != nil || len(plan) == 0 {
		return 0, fmt.Errorf("source: estimate rows: unexpected EXPLAIN output %.200q", js)
	}
	return int64(plan[0].Plan.Rows), nil
}
