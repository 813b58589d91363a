package serve

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/web"
)

// TestAPIForcedFailover runs a forced failover through the API with the
// source stopped: the result says how much may be lost, the target takes
// writes and holds every row that was replicated. The failover's record
// outlives the pglink serve that ran it: one started again shows it, with
// its steps and result.
func TestAPIForcedFailover(t *testing.T) {
	f := newAPIFixture(t, "pw-f0rc3")
	write(f.src, "shop", 5000)
	waitCaughtUp(t, "shop", f.dst.URL("shop"), f.src, "shop")
	// Many pages polling the link's detail share one read of its servers.
	opened := targetSessions(t, f.dst.URL("shop"))
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d web.Detail
			if code := f.getJSON("/api/links/shop", &d); code != 200 || d.Status == nil {
				t.Errorf("detail: %d %+v", code, d)
			}
		}()
	}
	wg.Wait()
	if n := targetSessions(t, f.dst.URL("shop")) - opened; n > 6 {
		t.Errorf("20 requests of the link's detail opened %d sessions on the target", n)
	}
	want := f.src.QueryString("shop", `SELECT count(*) || ' ' || sum(n) || ' ' || max(id) FROM items`)
	ctx := context.Background()
	if err := f.src.Stop(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	code, body := f.post("/api/links/shop/failover/plan", web.FailoverRequest{Kind: "forced"})
	if code != 200 || !strings.Contains(body, "lost") {
		t.Errorf("the forced plan does not warn of what may be lost: %d %s", code, body)
	}
	code, body = f.post("/api/links/shop/failover", web.FailoverRequest{Kind: "forced", Confirm: "shop"})
	if code != 202 {
		t.Fatalf("start the forced failover: %d %s", code, body)
	}
	v := f.waitFailover("shop")
	if v.State != "done" || v.Result == nil || !v.Result.OK {
		t.Fatalf("forced failover: %+v %+v", v, v.Result)
	}
	r := v.Result
	if r.MayBeLostBytes == nil || r.AppliedLSN == "" || r.LastKnownSourceLSN == "" {
		t.Errorf("the result does not say how much may be lost: %+v", r)
	}
	t.Logf("applied %s, last known source position %s, may be lost: %d bytes", r.AppliedLSN, r.LastKnownSourceLSN, *r.MayBeLostBytes)
	if got := f.dst.QueryString("shop", `SELECT count(*) || ' ' || sum(n) || ' ' || max(id) FROM items`); got != want {
		t.Errorf("the target holds %s (rows, sum, max id), the source held %s", got, want)
	}
	f.dst.Exec("shop", `INSERT INTO items VALUES (900001, 'after the failover', 1)`)
	waitUntil(t, "the link shown failed over", 30*time.Second, func() bool { return f.link("shop").State == "failed_over" })

	// Started again, pglink serve shows the failover as it ended.
	f.restart()
	var again web.FailoverView
	if code := f.getJSON("/api/links/shop/failover", &again); code != 200 {
		t.Fatalf("after a restart, GET the failover: %d %+v", code, again)
	}
	if again.State != v.State || again.Kind != "forced" || !reflect.DeepEqual(again.Steps, v.Steps) || again.Result == nil ||
		fmt.Sprint(*again.Result.MayBeLostBytes) != fmt.Sprint(*r.MayBeLostBytes) || again.Result.AppliedLSN != r.AppliedLSN {
		t.Errorf("after a restart the failover shows as\n%+v %+v\nnot as it ended:\n%+v %+v", again, again.Result, v, v.Result)
	}
	var d web.Detail
	f.getJSON("/api/links/shop", &d)
	if d.Failover == nil || d.Failover.State != "done" || d.Failover.Kind != "forced" {
		t.Errorf("after a restart the link's page shows no failover: %+v", d.Failover)
	}
}
