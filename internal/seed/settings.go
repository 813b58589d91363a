package seed

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// Memory for the index builds of post-data. A btree build sorts its keys
// in maintenance_work_mem, shared by the build's parallel workers: with
// PostgreSQL's default 64MB a primary key on a few million rows spills to
// disk and gets one parallel worker (each needs 32MB), with 1GB it sorts
// in memory with max_parallel_maintenance_workers. pgcopydb sets 1GB too.
// The sessions building side by side share buildMemoryBudget, and a target
// configured higher keeps its own setting.
const (
	buildMemoryPerSession = 1 << 20 // kB: 1GB
	buildMemoryBudget     = 2 << 20 // kB: 2GB across the post-data sessions
)

// buildMemoryKB is the maintenance_work_mem, in kB, each of sessions
// building indexes side by side gets when the target's own setting is
// current kB: never less than current.
func buildMemoryKB(current int64, sessions int) int64 {
	want := min(int64(buildMemoryPerSession), int64(buildMemoryBudget)/int64(max(sessions, 1)))
	return max(current, want)
}

// setBuildMemory raises the session's maintenance_work_mem for index
// builds (see buildMemoryKB).
func setBuildMemory(ctx context.Context, conn *pgx.Conn, sessions int) error {
	var current int64
	err := conn.QueryRow(ctx, "SELECT setting::bigint FROM pg_settings WHERE name = 'maintenance_work_mem'").Scan(&current)
	if err != nil {
		return fmt.Errorf("target: read maintenance_work_mem: %w", err)
	}
	want := buildMemoryKB(current, sessions)
	if want == current {
		return nil
	}
	if _, err := conn.Exec(ctx, "SELECT set_config('maintenance_work_mem', $1, false)", strconv.FormatInt(want, 10)+"kB"); err != nil {
		return fmt.Errorf("target: set maintenance_work_mem for index builds: %w", err)
	}
	return nil
}
