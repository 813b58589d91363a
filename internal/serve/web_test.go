package serve

import (
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/web"
)

// TestAPI checks the dashboard's JSON API against a running link: the list
// and the detail move as the link does and show no password; assess finds
// a blocker in a bad target; a failover without the link's name typed, or
// from another site's page, is refused and changes nothing; a planned
// failover under a write load runs in the server, past its request's
// client, and leaves both sides the same, and the link failed over and
// left alone.
func TestAPI(t *testing.T) {
	const pw = "pw-7q3z"
	f := newAPIFixture(t, pw)

	before := f.link("shop")
	if before.State != "replicating" || !strings.HasPrefix(before.Source, "postgres@127.0.0.1:") {
		t.Fatalf("/api/links: %+v", before)
	}
	write(f.src, "shop", 5000)
	waitCaughtUp(t, "shop", f.dst.URL("shop"), f.src, "shop")
	waitUntil(t, "the inserts counted in /api/links", 10*time.Second, func() bool {
		return f.link("shop").AppliedRows["insert"]-before.AppliedRows["insert"] == 100
	})
	after := f.link("shop")
	if after.LagSeconds == nil || after.LagBytes == nil || *after.LagSeconds > 5 {
		t.Errorf("lag after catching up: %v s, %v bytes", after.LagSeconds, after.LagBytes)
	}

	var d web.Detail
	waitUntil(t, "two lag samples", 10*time.Second, func() bool {
		f.getJSON("/api/links/shop", &d)
		return len(d.Lag) >= 2
	})
	if d.Status == nil || d.Status.Phase != "replicating" || d.Status.AppliedLSN == "" || d.StatusError != "" {
		t.Fatalf("detail's status: %+v (%s)", d.Status, d.StatusError)
	}
	if len(d.Tables) != 1 || d.Tables[0].Name != "public.items" || d.Tables[0].State != "copied" || d.Tables[0].Rows != 1000 || d.Tables[0].Percent != 100 {
		t.Errorf("detail's tables: %+v", d.Tables)
	}
	if len(d.History) == 0 {
		t.Error("detail has no history")
	}
	applied := d.Status.AppliedLSN
	write(f.src, "shop", 6000)
	waitUntil(t, "the applied position to move in the detail", 30*time.Second, func() bool {
		f.getJSON("/api/links/shop", &d)
		return d.Status != nil && d.Status.AppliedLSN != applied
	})

	// Assess: a target that has the table already blocks a link that
	// copies the schema.
	fillDB(f.dst, "taken", 1)
	code, body := f.post("/api/assess", web.AssessRequest{Source: withPassword(f.src.URL("shop"), pw), Target: withPassword(f.dst.URL("taken"), pw)})
	if code != 200 || !strings.Contains(body, `"severity": "blocker"`) || !strings.Contains(body, `"check": "tables_exist"`) {
		t.Errorf("assess of a target with the tables: %d\n%s", code, body)
	}
	answers := []string{body}

	// Refused: the wrong name, and a page of another site.
	w := startItemWriter(t, f.src.URL("shop"))
	for _, c := range []struct {
		what    string
		body    web.FailoverRequest
		headers []string
		code    int
	}{
		{"no confirmation", web.FailoverRequest{Kind: "planned"}, nil, 400},
		{"the wrong name", web.FailoverRequest{Kind: "planned", Confirm: "shop2"}, nil, 400},
		{"another origin", web.FailoverRequest{Kind: "planned", Confirm: "shop"}, []string{"Origin", "http://evil.example"}, 403},
		{"another site", web.FailoverRequest{Kind: "planned", Confirm: "shop"}, []string{"Sec-Fetch-Site", "cross-site"}, 403},
	} {
		if code, body := f.post("/api/links/shop/failover", c.body, c.headers...); code != c.code {
			t.Errorf("failover with %s: %d %s, want %d", c.what, code, body, c.code)
		}
	}
	time.Sleep(time.Second)
	if code, body := get(t, f.base+"/api/links/shop/failover", ""); code != 404 {
		t.Errorf("a refused failover left a run: %d %s", code, body)
	}
	n := w.count()
	waitUntil(t, "the writer to go on after the refusals", 10*time.Second, func() bool { return w.count() > n+50 })
	if l := f.link("shop"); l.State != "replicating" {
		t.Errorf("after the refusals the link is %s", l.State)
	}

	// The plan and the script.
	code, body = f.post("/api/links/shop/failover/plan", web.FailoverRequest{Kind: "planned"})
	if code != 200 || !strings.Contains(body, `"id": "fence"`) {
		t.Errorf("plan: %d %s", code, body)
	}
	answers = append(answers, body)
	code, script := get(t, f.base+"/api/links/shop/failover/script?kind=planned", "")
	if code != 200 || !strings.HasPrefix(script, "#!/usr/bin/env bash") || !strings.Contains(script, "PGLINK_SOURCE") {
		t.Errorf("script: %d %.200s", code, script)
	}
	answers = append(answers, script)

	// The failover: its request ends (and its client goes away) at once.
	code, body = f.post("/api/links/shop/failover", web.FailoverRequest{Kind: "planned", Confirm: "shop"}, "Origin", f.base)
	if code != 202 {
		t.Fatalf("start the failover: %d %s", code, body)
	}
	v := f.waitFailover("shop")
	if v.State != "done" || v.Result == nil || !v.Result.OK || v.Result.DowntimeSeconds == nil {
		t.Fatalf("failover: %+v %+v", v, v.Result)
	}
	for _, st := range v.Steps {
		if st.State != "done" {
			t.Errorf("step %s: %s %s", st.ID, st.State, st.Detail)
		}
	}
	w.assertWritesOnTarget(t, f.dst, "shop")
	assertSame(t, f.src, f.dst, "shop", "shop")
	fams := scrape(t, strings.TrimPrefix(f.base, "http://"))
	if v, ok := metric(fams, "pglink_failover_state", "link", "shop", "kind", "planned", "state", "done"); !ok || v != 1 {
		t.Errorf("pglink_failover_state done: %v %v", v, ok)
	}
	if v, ok := metric(fams, "pglink_failover_step", "link", "shop", "step", "source"); !ok || v != 1 {
		t.Errorf("pglink_failover_step at its last step: %v %v", v, ok)
	}
	if d, ok := metric(fams, "pglink_failover_downtime_seconds", "link", "shop"); !ok || d != *v.Result.DowntimeSeconds {
		t.Errorf("pglink_failover_downtime_seconds: %v %v, want %v", d, ok, *v.Result.DowntimeSeconds)
	}

	// The link is failed over, and stays so: not started again.
	waitUntil(t, "the link shown failed over", 30*time.Second, func() bool { return f.link("shop").State == "failed_over" })
	l := f.link("shop")
	time.Sleep(3 * time.Second)
	if again := f.link("shop"); again.State != "failed_over" || again.Errors != l.Errors || again.Reconnects != l.Reconnects {
		t.Errorf("after the failover: %+v, then %+v", l, again)
	}
	_, list := get(t, f.base+"/api/links", "")
	_, detail := get(t, f.base+"/api/links/shop", "")
	_, fo := get(t, f.base+"/api/links/shop/failover", "")
	for _, a := range append(answers, list, detail, fo) {
		if strings.Contains(a, pw) {
			t.Errorf("an answer shows the password: %.300s", a)
		}
	}
}
