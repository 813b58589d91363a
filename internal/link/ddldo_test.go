package link

import (
	"context"
	"testing"
	"time"

	"github.com/pglink/pglink/internal/pgtest"
	"github.com/pglink/pglink/internal/state"
)

// TestDDLInsideDOBlockHeld makes a schema change inside a DO block that
// also changes rows: the link holds before it (running the block again on
// the target would repeat its row changes), and says why and what to do;
// the change made by hand on the target and pglink resume-ddl --skip let it
// go on, the rows changed once.
func TestDDLInsideDOBlockHeld(t *testing.T) {
	src := pgtest.Start(t, pgtest.Options{})
	dst := pgtest.Start(t, pgtest.Options{})
	src.CreateDB("app")
	src.Exec("app", `CREATE TABLE public.t (id int PRIMARY KEY, n int)`, `INSERT INTO public.t SELECT g, 0 FROM generate_series(1, 100) g`)
	cfg := Config{Name: "doblock", Source: src.URL("app"), Target: dst.URL("app")}
	l := startTestLink(t, cfg)
	waitPhase(t, l, "replicating", time.Minute)

	src.Exec("app", `DO $$ BEGIN
		UPDATE public.t SET n = n + 1;
		ALTER TABLE public.t ADD COLUMN c int;
		INSERT INTO public.t VALUES (101, 1, 5);
	END $$`)
	waitFor(t, "the link to hold", time.Minute, nil, func() (bool, error) {
		return count(t, dst, "app", `SELECT count(*) FROM pglink.ddl_held WHERE link = 'doblock' AND decision IS NULL`) == "1", nil
	})
	st := linkStatus(t, "doblock", dst.URL("app"), "")
	if !contains(st.LastError, "inside a DO block", "repeat its data changes", "by hand", "resume-ddl --skip") {
		t.Fatalf("last error %q, remedy %q", st.LastError, st.Remedy)
	}
	if got := count(t, dst, "app", `SELECT count(*) FROM public.t WHERE n = 1`); got != "0" {
		t.Fatalf("%s rows of the held transaction were applied before its schema change", got)
	}
	dst.Exec("app", `BEGIN READ WRITE; SET LOCAL session_replication_role = replica; ALTER TABLE public.t ADD COLUMN c int; COMMIT`)
	if _, err := state.ResumeDDL(context.Background(), dst.Connect("app"), "doblock", state.ResumeSkip); err != nil {
		t.Fatal(err)
	}
	src.Exec("app", `UPDATE public.t SET c = id WHERE id % 2 = 0`)
	waitCaughtUp(t, l, src, "app", 2*time.Minute)
	assertSame(t, src, dst, "app", "app")
	if got := count(t, dst, "app", `SELECT sum(n) FROM public.t`); got != "101" {
		t.Fatalf("the target's sum of n is %s, want 101: the block's row changes were applied other than once", got)
	}
}
