package stream

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/change"
)

func TestSlots(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newSource(t, "CREATE TABLE s (id int)", "INSERT INTO s VALUES (1), (2), (3)")

	t.Run("replication config", func(t *testing.T) {
		cfg := src.config()
		rc := ReplicationConfig(cfg)
		if rc.RuntimeParams["replication"] != "database" || cfg.RuntimeParams["replication"] != "" {
			t.Errorf("replication param: copy %q, original %q", rc.RuntimeParams["replication"], cfg.RuntimeParams["replication"])
		}
	})

	exporting := src.replConn()
	info, err := CreateSlot(ctx, exporting, "snap", false, true)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "snap" || info.SnapshotName == "" || info.ConsistentPoint == 0 {
		t.Fatalf("slot info %+v", info)
	}
	src.Exec(srcDB, "INSERT INTO s VALUES (4)")

	t.Run("exported snapshot", func(t *testing.T) {
		conn := src.Connect(srcDB)
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		var count int
		for _, sql := range []string{"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
			"SET TRANSACTION SNAPSHOT '" + info.SnapshotName + "'"} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM s").Scan(&count); err != nil {
			t.Fatal(err)
		}
		if count != 3 {
			t.Errorf("the snapshot sees %d rows, want the 3 before the slot", count)
		}
	})
	t.Run("the stream starts where the snapshot ends", func(t *testing.T) {
		r := src.stream("snap", 10, nil)
		body, _ := r.txn(t)
		if len(body) != 1 || body[0].Kind != change.Insert || string(body[0].New[0].Data) != "4" {
			t.Fatalf("first streamed transaction %v, want the insert of 4", kinds(body))
		}
		if body[0].CommitLSN < info.ConsistentPoint {
			t.Errorf("commit %s before the consistent point %s", body[0].CommitLSN, info.ConsistentPoint)
		}
		waitFor(t, "the slot to be active", func() bool {
			return src.QueryString(srcDB, "SELECT active FROM pg_replication_slots WHERE slot_name = 'snap'") == "true"
		})

		second := New(Options{Conn: src.config(), Slot: "snap", Publication: testPub, SpoolDir: t.TempDir()})
		err := second.Run(ctx, make(chan *change.Change))
		if !errors.Is(err, ErrSlotActive) || !strings.Contains(err.Error(), "source: replication slot snap") {
			t.Errorf("second streamer on an active slot: %v", err)
		}
		r.stop()
	})
	t.Run("drop", func(t *testing.T) {
		conn := src.replConn()
		if err := DropSlot(ctx, conn, "snap"); err != nil {
			t.Fatal(err)
		}
		if err := DropSlot(ctx, conn, "snap"); !errors.Is(err, ErrSlotMissing) {
			t.Errorf("dropping a dropped slot: %v, want ErrSlotMissing", err)
		}
	})
	t.Run("missing slot", func(t *testing.T) {
		st := New(Options{Conn: src.config(), Slot: "nope", Publication: testPub, SpoolDir: t.TempDir()})
		err := st.Run(ctx, make(chan *change.Change))
		if !errors.Is(err, ErrSlotMissing) || !strings.Contains(err.Error(), "source: replication slot nope does not exist") {
			t.Errorf("got %v, want a missing-slot error", err)
		}
	})
	t.Run("temporary slot goes with its connection", func(t *testing.T) {
		conn := src.replConn()
		if _, err := CreateSlot(ctx, conn, "tmp", true, false); err != nil {
			t.Fatal(err)
		}
		exists := func() string {
			return src.QueryString(srcDB, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'tmp' AND temporary")
		}
		if got := exists(); got != "1" {
			t.Fatalf("temporary slots named tmp: %s", got)
		}
		conn.Close(ctx)
		waitFor(t, "the temporary slot to go", func() bool { return exists() == "0" })
	})
	t.Run("bad names", func(t *testing.T) {
		conn := src.replConn()
		for _, name := range []string{"", "Upper", "semi;colon", strings.Repeat("a", 64)} {
			if _, err := CreateSlot(ctx, conn, name, true, false); err == nil {
				t.Errorf("CreateSlot(%q): want an error", name)
			}
		}
	})
}
