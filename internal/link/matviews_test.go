package link

import (
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
)

// TestMatViewsRefreshedAfterSeeding links a source whose materialized
// views read each other (through a plain view too, and in an order their
// names do not give): once seeding is done the target's copies are
// refreshed, in an order that works, and hold what the source's hold.
func TestMatViewsRefreshedAfterSeeding(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE SCHEMA rep`,
		`CREATE TABLE public.sales (id int PRIMARY KEY, region text, amount int)`,
		`INSERT INTO public.sales SELECT g, 'r' || (g % 7), g FROM generate_series(1, 5000) g`,
		`CREATE MATERIALIZED VIEW rep.z_by_region AS SELECT region, sum(amount) AS total FROM public.sales GROUP BY region`,
		`CREATE VIEW rep.m_big AS SELECT * FROM rep.z_by_region WHERE total > 1000`,
		`CREATE MATERIALIZED VIEW public.a_top AS SELECT region, total FROM rep.m_big ORDER BY total DESC LIMIT 3`)
	cfg := Config{Name: "mv", Source: src.URL("app"), Target: dst.URL("app")}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", 2*time.Minute)
	var hist string
	waitFor(t, "the materialized views refreshed", time.Minute, l, func() (bool, error) {
		hist = dst.QueryString("app", `SELECT coalesce(string_agg(detail, ' '), '') FROM pglink.history WHERE link = 'mv' AND event = 'matviews_refreshed'`)
		return hist != "", nil
	})
	if !strings.Contains(hist, "2 materialized views") || !strings.Contains(hist, "rep.z_by_region, public.a_top") {
		t.Errorf("history of the refresh: %q, want both views, rep.z_by_region first", hist)
	}
	for _, mv := range []string{"rep.z_by_region", "public.a_top"} {
		sql := "SELECT string_agg(region || '=' || total, ',' ORDER BY region) FROM " + mv
		if s, d := src.QueryString("app", sql), dst.QueryString("app", sql); s != d {
			t.Errorf("%s: source %s, target %s", mv, s, d)
		}
	}
	assertSame(t, src, dst, "app", "app")
}
