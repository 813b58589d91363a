package failover

import (
	"context"
	"fmt"
	"log/slog"

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

// Drop removes link name as state.Drop does. The target of a reverse link
// is the source of the failover that made it: it stays fenced after the
// drop, as it was before the reverse link, unless release makes it
// writable. It says what became of that target.
func Drop(ctx context.Context, name, source, target string, release bool, log *slog.Logger) (string, error) {
	reverse, err := isReverse(ctx, name, target)
	if err != nil {
		return "", err
	}
	if err := state.Drop(ctx, name, source, target, log); err != nil {
		return "", err
	}
	switch {
	case release:
		if err := ReleaseSource(ctx, target); err != nil {
			return "", fmt.Errorf("the link is dropped, but its target could not be made writable: %w", err)
		}
		return "the target takes writes", nil
	case reverse:
		res, err := FenceSource(ctx, name, target)
		if err != nil {
			return "", fmt.Errorf("the reverse link is dropped, but its target (the old source) could not be fenced again: run pglink fence-source on it: %w", err)
		}
		return "the target, the old source of a failover, stays fenced: " + res + " (pglink release-source makes it writable)", nil
	}
	return "", nil
}

// isReverse says whether link name is a reverse link; a target that does
// not answer, or holds no such link, says no: state.Drop reports those.
func isReverse(ctx context.Context, name, target string) (bool, error) {
	tgt, err := endpoint.Parse(endpoint.Target, target)
	if err != nil {
		return false, err
	}
	conn, err := state.TargetEndpoint(tgt).Connect(ctx)
	if err != nil {
		return false, nil
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if ok, err := state.Exists(ctx, conn); err != nil || !ok {
		return false, nil
	}
	row, err := state.Load(ctx, conn, name)
	if err != nil {
		return false, nil
	}
	return row.ReverseOf != nil, nil
}
