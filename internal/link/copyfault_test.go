package link

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestCopySessionKilled ends a COPY of the seeding in the middle of its
// table, on the source (COPY ... TO STDOUT) or on the target (COPY ...
// FROM STDIN): the seeding retries, the table is copied again, and no row
// is there twice or missing.
//
// The table is partitioned: its first partition is copied and committed
// on the target when the second one's COPY is ended, so a seeding that
// did not empty the table before copying it again would hold those rows
// twice.
//
// The target's copy of the table checks each row with a function that, at
// row gateRow, waits for an advisory lock the test holds: the COPY stands
// still half-way, with rows sent and rows to come, for as long as the test
// needs to end one of its sessions.
func TestCopySessionKilled(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	for _, side := range []string{"source", "target"} {
		t.Run(side, func(t *testing.T) { copySessionKilled(t, src, dst, side) })
	}
}

const (
	gateRows = 400000
	gateRow  = 251000 // in the second partition, with about 20MB of COPY stream still to come: more than the sockets and pipe between the sides hold
	gateLock = 4242
)

func copySessionKilled(t *testing.T, src, dst *pgtest.Cluster, side string) {
	db := "kill_" + side
	src.CreateDB(db)
	src.Exec(db, fmt.Sprintf(`CREATE FUNCTION public.gate(id int) RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN
			IF id = %d THEN PERFORM pg_advisory_lock_shared(%d); PERFORM pg_advisory_unlock_shared(%d); END IF;
			RETURN true;
		END $$`, gateRow, gateLock, gateLock),
		`CREATE TABLE public.big (id int PRIMARY KEY, v text, CHECK (public.gate(id))) PARTITION BY RANGE (id)`,
		`CREATE TABLE public.big_1 PARTITION OF public.big FOR VALUES FROM (1) TO (250001)`,
		`CREATE TABLE public.big_2 PARTITION OF public.big FOR VALUES FROM (250001) TO (MAXVALUE)`,
		fmt.Sprintf(`INSERT INTO public.big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, %d) g`, gateRows),
		`CREATE TABLE public.small (id int PRIMARY KEY, v text)`,
		`INSERT INTO public.small SELECT g, 'small ' || g FROM generate_series(1, 1000) g`)
	dst.CreateDB(db)
	gate := dst.Connect(db)
	ctx := context.Background()
	if _, err := gate.Exec(ctx, fmt.Sprintf("SELECT pg_advisory_lock(%d)", gateLock)); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Name: "kill" + side, Source: src.URL(db), Target: dst.URL(db), Jobs: 1}
	l := startTestLink(t, cfg)
	waitFor(t, "the target's COPY to wait at the gate", time.Minute, l, func() (bool, error) {
		return dst.QueryString(db, `SELECT count(*) FROM pg_stat_activity
			WHERE query ILIKE 'COPY%FROM STDIN%' AND wait_event_type = 'Lock' AND wait_event = 'advisory'`) == "1", nil
	})
	// Only a session still running its COPY is ended.
	victim := `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
		WHERE query ILIKE 'COPY%big_2%TO STDOUT%' AND state = 'active' AND pid <> pg_backend_pid()`
	on := src
	if side == "target" {
		victim = `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
			WHERE query ILIKE 'COPY%big%FROM STDIN%' AND state = 'active'`
		on = dst
	}
	if got := on.QueryString(db, victim); got != "true" {
		t.Fatalf("end the %s's COPY session: got %s, want true", side, got)
	}
	if _, err := gate.Exec(ctx, fmt.Sprintf("SELECT pg_advisory_unlock(%d)", gateLock)); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, l, "replicating", 2*time.Minute)
	res := assertSame(t, src, dst, db, db)
	t.Logf("after the %s's COPY session was ended: %s", side, res.String())
	if got := count(t, dst, db, "SELECT count(*) FROM public.big"); got != fmt.Sprint(gateRows) {
		t.Errorf("target has %s rows in public.big, want %d", got, gateRows)
	}
	if err := l.stop(); err != nil {
		t.Fatal(err)
	}
}
