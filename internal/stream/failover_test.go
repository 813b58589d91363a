package stream

import (
	"context"
	"fmt"
	"testing"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestSlotFailoverFlag creates a link's slot and a temporary one on
// PostgreSQL 17, where the link's slot must have failover = true (a
// standby that synchronizes slots keeps it), and on 16, which has no such
// flag: both slots export a snapshot that a session can import.
func TestSlotFailoverFlag(t *testing.T) {
	for _, version := range []int{16, 17} {
		t.Run(fmt.Sprint(version), func(t *testing.T) {
			c := pgtest.Start(t, pgtest.Options{Version: version})
			c.CreateDB(srcDB)
			c.Exec(srcDB, "CREATE TABLE s (id int)", "INSERT INTO s VALUES (1), (2)")
			src := &source{Cluster: c, t: t}
			ctx := context.Background()
			for _, temporary := range []bool{false, true} {
				name := map[bool]string{false: "link", true: "link_sync"}[temporary]
				conn := src.replConn()
				info, err := CreateSlot(ctx, conn, name, temporary, true)
				if err != nil {
					t.Fatalf("create slot %s: %v", name, err)
				}
				if info.SnapshotName == "" || info.ConsistentPoint == 0 {
					t.Fatalf("slot %s: %+v, want an exported snapshot", name, info)
				}
				got := c.QueryString(srcDB, `SELECT count(*) FROM s`)
				imported := c.Connect(srcDB)
				tx, err := imported.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, sql := range []string{"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "SET TRANSACTION SNAPSHOT '" + info.SnapshotName + "'"} {
					if _, err := tx.Exec(ctx, sql); err != nil {
						t.Fatalf("slot %s: import its snapshot: %v", name, err)
					}
				}
				tx.Rollback(ctx)
				if got != "2" {
					t.Fatalf("table holds %s rows", got)
				}
			}
			if version < 17 {
				if got := c.QueryString(srcDB, `SELECT count(*) FROM pg_attribute WHERE attrelid = 'pg_replication_slots'::regclass AND attname = 'failover'`); got != "0" {
					t.Fatalf("PostgreSQL %d has a failover column", version)
				}
				return
			}
			got := c.QueryString(srcDB, `SELECT string_agg(slot_name || '=' || failover, ',' ORDER BY slot_name) FROM pg_replication_slots`)
			if want := "link=true,link_sync=false"; got != want {
				t.Errorf("slots: %s, want %s", got, want)
			}
		})
	}
}
