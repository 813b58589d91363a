package link

import (
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestPartitionTruncateNewPartition makes partitions of a linked table
// while linked (a leaf, and a leaf of a new intermediate one), writes to them
// and truncates each alone on the source, with no restart of the link: the
// capture gave them their truncate trigger at once, so the target's
// partitions are emptied too.
func TestPartitionTruncateNewPartition(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.ev (id bigserial, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k)`,
		`CREATE TABLE public.ev_1 PARTITION OF public.ev FOR VALUES IN (1)`,
		`CREATE TABLE public.ev_2 PARTITION OF public.ev FOR VALUES IN (2)`,
		`CREATE TABLE public.ev_3 PARTITION OF public.ev FOR VALUES IN (3)`,
		`INSERT INTO public.ev (k, v) SELECT 1 + g % 3, 'seeded ' || g FROM generate_series(1, 300) g`)
	cfg := Config{Name: "pnew", Source: src.URL("app"), Target: dst.URL("app")}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)

	load := startLoad(t, src, partitionWriteLoad)
	const triggerSQL = `SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = 'pglink_truncate_pnew' AND tgenabled = 'A'`
	for _, s := range []struct{ make, part, fill, emptied string }{
		{make: `CREATE TABLE public.ev_4 PARTITION OF public.ev FOR VALUES IN (4)`, part: "public.ev_4",
			fill:    `INSERT INTO public.ev (k, v) SELECT 4, 'four ' || g FROM generate_series(1, 50) g`,
			emptied: `SELECT count(*) FROM public.ev WHERE k = 4`},
		// A partition of a partition made while linked.
		{make: `CREATE TABLE public.ev_5 PARTITION OF public.ev FOR VALUES IN (5, 6) PARTITION BY LIST (k);
			CREATE TABLE public.ev_5a PARTITION OF public.ev_5 FOR VALUES IN (5)`, part: "public.ev_5a",
			fill:    `INSERT INTO public.ev (k, v) SELECT 5, 'five ' || g FROM generate_series(1, 50) g`,
			emptied: `SELECT count(*) FROM public.ev WHERE k = 5`},
	} {
		src.Exec("app", s.make)
		if got := src.QueryString("app", triggerSQL, s.part); got != "1" {
			t.Fatalf("%s: the new partition has no truncate trigger on the source", s.part)
		}
		src.Exec("app", s.fill)
		waitCaughtUp(t, l, src, "app", time.Minute)
		if got := count(t, dst, "app", s.emptied); got != "50" {
			t.Fatalf("%s: the target's partition holds %s rows before the truncate, want 50", s.part, got)
		}
		src.Exec("app", `TRUNCATE `+s.part)
		waitCaughtUp(t, l, src, "app", time.Minute)
		if got := count(t, dst, "app", s.emptied); got != "0" {
			t.Fatalf("%s: the target's partition holds %s rows after the source's TRUNCATE, want 0", s.part, got)
		}
	}
	load.halt()
	waitCaughtUp(t, l, src, "app", time.Minute)
	assertSame(t, src, dst, "app", "app")
}
