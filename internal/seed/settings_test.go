package seed

import (
	"context"
	"testing"

	"github.com/pglink/pglink/internal/pgtest"
)

func TestBuildMemoryKB(t *testing.T) {
	const mb = 1024
	cases := []struct {
		current  int64
		sessions int
		want     int64
	}{
		{64 * mb, 1, 1024 * mb},   // the default is raised to 1GB
		{64 * mb, 2, 1024 * mb},   // two sessions share 2GB
		{64 * mb, 8, 256 * mb},    // eight sessions too
		{64 * mb, 0, 1024 * mb},   // no session count: one
		{4096 * mb, 2, 4096 * mb}, // a target set higher keeps its setting
		{512 * mb, 8, 512 * mb},
	}
	for _, c := range cases {
		if got := buildMemoryKB(c.current, c.sessions); got != c.want {
			t.Errorf("buildMemoryKB(%d, %d) = %d, want %d", c.current, c.sessions, got, c.want)
		}
	}
}

// TestSetBuildMemory checks the setting on real sessions: raised from the
// server's default, kept where the server is configured higher.
func TestSetBuildMemory(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ server, want string }{{"", "1GB"}, {"3GB", "3GB"}} {
		opts := pgtest.Options{}
		if c.server != "" {
			opts.Settings = map[string]string{"maintenance_work_mem": "'" + c.server + "'"}
		}
		cl := pgtest.Start(t, opts)
		conn := cl.Connect("postgres")
		if err := setBuildMemory(ctx, conn, 2); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := conn.QueryRow(ctx, "SHOW maintenance_work_mem").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("server maintenance_work_mem %q: the session has %s, want %s", c.server, got, c.want)
		}
	}
}

// TestSeedingSessionsCommitAsync checks that seeding's target sessions do
// not wait for the WAL flush at each commit (see connectTarget).
func TestSeedingSessionsCommitAsync(t *testing.T) {
	ctx := context.Background()
	cl := pgtest.Start(t, pgtest.Options{})
	conn, err := connectTarget(ctx, cl.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var got string
	if err := conn.QueryRow(ctx, "SHOW synchronous_commit").Scan(&got); err != nil || got != "off" {
		t.Errorf("synchronous_commit of a seeding session: %q (%v), want off", got, err)
	}
}
