package assess

import (
	"context"
	"os"
	"path/filepath"
	"syscall"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/endpoint"
)

// freeDisk finds the free space under the server's data directory (sub, a
// directory in it, e.g. "pg_wal"; empty for the directory itself). SQL
// has no way to ask a server for its free disk, so it can be measured only
// when the server runs on this machine: connected through a Unix socket or
// a loopback address, the data directory readable as a setting (superuser or
// pg_read_all_settings) and present here. It returns nil and the reason
// otherwise.
func freeDisk(ctx context.Context, conn *pgx.Conn, sub string) (*int64, string) {
	var dir *string
	err := conn.QueryRow(ctx, `SELECT (SELECT setting FROM pg_settings WHERE name = 'data_directory')`).Scan(&dir)
	if err != nil || dir == nil || *dir == "" {
		return nil, "cannot be found out: the data directory is hidden from the user (it needs superuser or pg_read_all_settings); check it on the server with df -h"
	}
	if !endpoint.IsLocalHost(conn.Config().Host) {
		return nil, "cannot be found out from SQL on a server on another machine; check it there with df -h " + filepath.Join(*dir, sub)
	}
	path := filepath.Join(*dir, sub)
	if _, err := os.Stat(filepath.Join(*dir, "PG_VERSION")); err != nil {
		return nil, "cannot be found out: the server's data directory " + *dir + " is not visible on this machine; check it on the server with df -h " + path
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return nil, "cannot be found out: " + err.Error()
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	return &free, "measured on this machine under " + path
}
