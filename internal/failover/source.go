package failover

import (
	"context"
	"fmt"

	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/state"
)

// ReleaseSource lifts the fence of a planned failover: the old source
// database takes writes again.
func ReleaseSource(ctx context.Context, source string) error {
	src, err := endpoint.Parse(endpoint.Source, source)
	if err != nil {
		return err
	}
	conn, err := src.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return Unfence(ctx, conn)
}

// FenceSource makes an old source that came back after a forced failover
// refuse writes, and drops the link's replication slots there, which
// would otherwise keep its WAL forever. It says what it did.
func FenceSource(ctx context.Context, name, source string) (string, error) {
	if err := state.ValidateName(name); err != nil {
		return "", err
	}
	src, err := endpoint.Parse(endpoint.Source, source)
	if err != nil {
		return "", err
	}
	conn, err := src.Connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	res, err := Fence(ctx, conn)
	if err != nil {
		return "", err
	}
	dropped, err := state.DropSourceSlots(ctx, conn, name)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d tables and partitions refuse writes, %d sessions ended, %d replication slots dropped", res.Tables, res.EndedSessions, dropped), nil
}
