package failover

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/status"
)

// TestForcedFailoverSourceGone stops the source server and fails over:
// the target takes writes at once, its sequences are past the column
// maxima, the loss is reported; when the old source comes back, status
// reports split brain, and fence-source makes it refuse writes and drops
// the slot.
func TestForcedFailoverSourceGone(t *testing.T) {
	f := newFixture(t, "gone")
	f.startLink()
	if err := pgtest.ExecOn(f.source, `INSERT INTO accounts (owner) SELECT 'last ' || g FROM generate_series(1, 50) g`); err != nil {
		t.Fatal(err)
	}
	f.waitFor("the last rows on the target", time.Minute, func() bool {
		return f.targetString(`SELECT count(*)::text FROM accounts WHERE owner LIKE 'last %'`) == "50"
	})
	ctx := context.Background()
	if err := f.src.Stop(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	p, err := Build(Options{Name: "gone", Source: f.source, Target: f.target, Kind: Forced, SequenceMargin: 1000})
	if err != nil {
		t.Fatal(err)
	}
	res, err := runLogged(ctx, t, p)
	if err != nil {
		t.Fatalf("forced failover: %v", err)
	}
	if res.AppliedLSN == "" || res.LastKnownSourceLSN == "" || res.MayBeLostBytes == nil {
		t.Errorf("the loss is not reported: %+v", res)
	}
	if err := f.linkEnded(30 * time.Second); err != nil {
		t.Errorf("the link should stop: %v", err)
	}
	var maxID int64
	maxID, _ = strconv.ParseInt(f.targetString(`SELECT max(id)::text FROM accounts`), 10, 64)
	if err := pgtest.ExecOn(f.target, `INSERT INTO accounts (owner) VALUES ('after')`); err != nil {
		t.Fatalf("the target refuses writes: %v", err)
	}
	newID, _ := strconv.ParseInt(f.targetString(`SELECT id::text FROM accounts WHERE owner = 'after'`), 10, 64)
	if newID < maxID+1000 {
		t.Errorf("new id %d: the sequence was not set past the maximum %d plus the margin", newID, maxID)
	}

	// The old source comes back: split brain, until fence-source.
	if err := f.src.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := status.Read(ctx, "gone", f.target, f.source)
	if err != nil {
		t.Fatal(err)
	}
	if !st.SplitBrain {
		t.Errorf("status should report split brain: %+v", st)
	}
	done, err := FenceSource(ctx, "gone", f.source)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(done)
	if err := pgtest.ExecOn(f.source, `SET default_transaction_read_only = off`, `INSERT INTO accounts (owner) VALUES ('old side')`); err == nil {
		t.Error("the fenced old source took a write")
	}
	if n := queryString(f.source, `SELECT count(*)::text FROM pg_replication_slots`); n != "0" {
		t.Errorf("%s slots left on the old source", n)
	}
	st, err = status.Read(ctx, "gone", f.target, f.source)
	if err != nil {
		t.Fatal(err)
	}
	if st.SplitBrain || st.SourceFenced == nil || !*st.SourceFenced {
		t.Errorf("status after fence-source: split brain %v, fenced %v", st.SplitBrain, st.SourceFenced)
	}
}
