package link

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/validate"
)

// TestValidateUnderLoad validates a healthy link while a client keeps
// writing to the source: the comparison happens at one consistent point,
// so it must find the two sides equal every time; then a row changed by
// hand on the target must be found.
func TestValidateUnderLoad(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("bank")
	bankFixture(src, "bank", 20000)
	cfg := Config{Name: "val", Source: src.URL("bank"), Target: dst.URL("bank")}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)

	ctx, stopWrites := context.WithCancel(context.Background())
	defer stopWrites()
	w := &writer{}
	werr := make(chan error, 1)
	go func() { werr <- w.run(ctx, cfg.Source) }()
	waitFor(t, "writes", 30*time.Second, l, func() (bool, error) { return w.n.Load() > 100, nil })

	opts := validate.LinkOptions{Name: "val", Source: cfg.Source, Target: cfg.Target}
	for i := range 3 {
		before := w.n.Load()
		rep, err := validate.Link(context.Background(), opts)
		if err != nil {
			t.Fatalf("validate %d: %v", i, err)
		}
		if !rep.Equal() {
			var b strings.Builder
			rep.WriteTable(&b)
			t.Fatalf("validate %d under load found differences on a healthy link:\n%s", i, b.String())
		}
		t.Logf("validate %d: equal, %d tables, %.2fs, while the client committed %d transactions",
			i, len(rep.Tables), rep.Seconds, w.n.Load()-before)
	}
	if w.n.Load() < 200 {
		t.Errorf("the client committed only %d transactions: the load was too light to mean anything", w.n.Load())
	}

	// A change on the target behind the link's back is found and named.
	dst.Exec("bank", `SET default_transaction_read_only = off`, `SET session_replication_role = replica`,
		`UPDATE bank.big1 SET pad = 'tampered' WHERE id = 4242`)
	rep, err := validate.Link(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tr := range rep.Tables {
		if tr.Table == "bank.big1" && tr.DifferentCount == 1 && len(tr.Different) == 1 && tr.Different[0] == "(4242)" {
			found = true
		}
	}
	if rep.Equal() || !found {
		var b strings.Builder
		rep.WriteTable(&b)
		t.Fatalf("a changed row was not found:\n%s", b.String())
	}
	stopWrites()
	if err := <-werr; err != nil {
		t.Fatalf("writer: %v", err)
	}
}
