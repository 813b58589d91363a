package link

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestSourceSwitchoverToStandby links a PostgreSQL 17 source that has a
// physical standby synchronizing slots, loses the source while linked,
// promotes the standby, and starts the link again from it: the link's slot
// was created to fail over, so the standby has it, and the link goes on
// without a new seeding, losing no change and applying none twice (each
// transaction adds 1 to a counter, so one applied twice would show).
func TestSourceSwitchoverToStandby(t *testing.T) {
	primary := pgtest.Start(t, pgtest.Options{Version: 17})
	dst := pgtest.Start(t, pgtest.Options{Version: 17})
	schema := []string{`CREATE TABLE items (id int PRIMARY KEY, v text)`, `CREATE TABLE counters (id int PRIMARY KEY, n bigint NOT NULL)`}
	primary.CreateDB("shop")
	primary.Exec("shop", schema...)
	primary.Exec("shop", `INSERT INTO counters SELECT g, 0 FROM generate_series(1, 10) g`,
		`INSERT INTO items SELECT g, 'seed' FROM generate_series(1, 1000) g`)
	dst.CreateDB("shop")
	dst.Exec("shop", schema...)
	standby := primary.Standby(t, "standby1", "shop", map[string]string{"sync_replication_slots": "on", "hot_standby_feedback": "on"})
	primary.Exec("postgres", `ALTER SYSTEM SET synchronized_standby_slots = 'standby1'`, `SELECT pg_reload_conf()`)

	cfg := Config{Name: "ha", Source: primary.URL("shop"), Target: dst.URL("shop"), Schema: SchemaExisting}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", 2*time.Minute)
	write := func(c *pgtest.Cluster, from, to int) {
		for i := from; i < to; i++ {
			c.Exec("shop", fmt.Sprintf(`INSERT INTO items VALUES (%d, 'w'); UPDATE counters SET n = n + 1 WHERE id = %d`, 2000+i, i%10+1))
		}
	}
	write(primary, 0, 50)
	waitCaughtUp(t, l, primary, "shop", time.Minute)
	if got := primary.QueryString("shop", `SELECT failover FROM pg_replication_slots WHERE slot_name = 'pglink_ha'`); got != "true" {
		t.Fatalf("the link's slot has failover = %s", got)
	}
	// A synchronized slot is kept (no longer temporary) once the primary's
	// has passed what the standby can give: a record of the running
	// transactions, which the primary writes every 15 s, moves it on.
	waitFor(t, "the link's slot on the standby", 2*time.Minute, l, func() (bool, error) {
		primary.Exec("shop", `SELECT pg_log_standby_snapshot()`)
		return standby.QueryString("shop", `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pglink_ha' AND synced AND NOT temporary`) == "1", nil
	})
	write(primary, 50, 100)
	waitCaughtUp(t, l, primary, "shop", time.Minute)
	lsn := primary.QueryString("shop", "pg_current_wal_insert_lsn()")
	waitFor(t, "the standby to replay up to "+lsn, time.Minute, l, func() (bool, error) {
		return standby.QueryString("shop", "pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn) == "true", nil
	})
	t.Logf("the standby's copy of the slot confirmed %s, the link applied up to %s",
		standby.QueryString("shop", `SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'pglink_ha'`), lsn)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := primary.Stop(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	if err := l.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	standby.Exec("shop", `SELECT pg_promote()`)
	write(standby, 100, 150)
	cfg.Source = standby.URL("shop")
	l2 := startTestLink(t, cfg)
	waitCaughtUp(t, l2, standby, "shop", 2*time.Minute)
	assertSame(t, standby, dst, "shop", "shop")
	if got := dst.QueryString("shop", `SELECT sum(n) FROM counters`); got != "150" {
		t.Errorf("the counters add up to %s on the target, want 150", got)
	}
	if got := dst.QueryString("shop", `SELECT count(*) FROM pglink.history WHERE link = 'ha' AND event = 'slot_created'`); got != "1" {
		t.Errorf("%s slots created for the link, want the first one only", got)
	}
}
