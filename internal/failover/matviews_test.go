package failover

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
)

// TestPlannedFailoverRefreshesMatViews fails over a link whose source has
// materialized views (one reading the other) after the source took more
// writes: before the target opens, its views are refreshed with every
// row the target got, the step is timed in the result, and the script's
// form of the step runs too.
func TestPlannedFailoverRefreshesMatViews(t *testing.T) {
	f := newFixture(t, "mv")
	f.src.Exec("app",
		`CREATE MATERIALIZED VIEW order_totals AS SELECT account, count(*) AS n, sum(amount) AS total FROM orders GROUP BY account`,
		`CREATE MATERIALIZED VIEW big_accounts AS SELECT account, n FROM order_totals WHERE n >= 10`)
	f.startLink()
	f.waitFor("the refresh after seeding", time.Minute, func() bool {
		return f.targetString(`SELECT count(*)::text FROM pglink.history WHERE link = 'mv' AND event = 'matviews_refreshed'`) == "1"
	})
	const orders = `SELECT count(*)::text FROM orders`
	const viewed = `SELECT sum(n)::text FROM order_totals`
	if got, want := f.targetString(viewed), f.targetString(orders); got != want {
		t.Fatalf("after seeding the target's order_totals counts %q orders, want %q", got, want)
	}
	if err := pgtest.ExecOn(f.target, "SET default_transaction_read_only = off", state.RefreshMatViewsSQL("mv")); err != nil {
		t.Fatalf("the script's refresh: %v", err)
	}

	if err := pgtest.ExecOn(f.source, `INSERT INTO orders (account, amount) SELECT 1 + g % 20, 1 FROM generate_series(1, 3000) g`); err != nil {
		t.Fatal(err)
	}
	p, err := Build(Options{Name: "mv", Source: f.source, Target: f.target, Kind: Planned, Timeout: time.Minute, MaxLag: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s := Script(p); !strings.Contains(s, "Refresh materialized views") || !strings.Contains(s, "REFRESH MATERIALIZED VIEW") {
		t.Errorf("the script has no refresh step")
	}
	res, err := runLogged(context.Background(), t, p)
	if err != nil {
		t.Fatalf("failover: %v", err)
	}
	var step *StepResult
	for i, s := range res.Steps {
		if s.ID == "matviews" {
			step = &res.Steps[i]
			if i+1 >= len(res.Steps) || res.Steps[i+1].ID != "open" {
				t.Errorf("the refresh is not the step before the target opens: %+v", res.Steps)
			}
		}
	}
	if step == nil || step.State != StepDone || !strings.Contains(step.Detail, "2 refreshed: public.order_totals, public.big_accounts") || step.Seconds <= 0 {
		t.Fatalf("refresh step: %+v", step)
	}
	if got, want := f.targetString(viewed), f.targetString(orders); got != want || want != "8000" {
		t.Errorf("after the failover the target's order_totals counts %q orders, want %q (8000)", got, want)
	}
	if got := f.targetString(`SELECT count(*)::text FROM big_accounts`); got != "500" {
		t.Errorf("big_accounts has %s rows after the failover, want 500", got)
	}
	f.assertSame()
}
