package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/apply"
	"github.com/pglink/pglink/internal/endpoint"
)

// Drop removes what the link made on both sides: slot, publication, origin,
// the read-only guard, its rows in the pglink schema (and the schema when no
// link remains). The target's data stays. It works on a broken or half-made
// link, and says what it could not remove.
func Drop(ctx context.Context, name, source, target string, log *slog.Logger) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	src, tgt, err := ParseEndpoints(source, target)
	if err != nil {
		return err
	}
	var errs []error
	l, err := AcquireLease(ctx, tgt, name)
	switch {
	case errors.Is(err, ErrLeaseHeld):
		return fmt.Errorf("%w (pglink drop needs the link stopped)", err)
	case err != nil:
		// The target cannot be reached (or its database was never made):
		// still remove what the link made on the source.
		errs = append(errs, err)
	default:
		defer l.Release(ctx)
	}
	if err := DropSourceSide(ctx, src, name, log); err != nil {
		errs = append(errs, err)
	}
	if l != nil {
		if err := DropTargetSide(ctx, tgt, name, log); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("drop link %s: not everything could be removed; fix the cause and run pglink drop again: %w", name, errors.Join(errs...))
	}
	return nil
}

func DropSourceSide(ctx context.Context, src *endpoint.Endpoint, name string, log *slog.Logger) error {
	conn, err := src.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	names := NamesFor(name)
	for _, slot := range []string{names.Slot, names.SyncSlot} {
		dropped, err := DropSlot(ctx, conn, slot)
		if err != nil {
			return err
		}
		if dropped {
			log.Info("dropped replication slot", "slot", slot)
		}
	}
	if err := RemoveCapture(ctx, conn, name); err != nil {
		return err
	}
	exists, ours, err := PublicationOwner(ctx, conn, names.Publication, name)
	if err != nil {
		return err
	}
	if exists && !ours {
		log.Warn("publication exists but was not made by this link; left alone", "publication", names.Publication)
		return nil
	}
	if err := DropPublication(ctx, conn, names.Publication); err != nil {
		return err
	}
	log.Info("dropped publication", "publication", names.Publication)
	return nil
}

func DropPublicationIfOurs(ctx context.Context, conn *pgx.Conn, pub, link string) error {
	exists, ours, err := PublicationOwner(ctx, conn, pub, link)
	if err != nil || !exists || !ours {
		return err
	}
	return DropPublication(ctx, conn, pub)
}

func DropTargetSide(ctx context.Context, tgt *endpoint.Endpoint, name string, log *slog.Logger) error {
	conn, err := tgt.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := apply.DropOrigin(ctx, conn, NamesFor(name).Origin, NamesFor(name).Origin2); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if err := RemoveLinkState(ctx, conn, name); err != nil {
		return err
	}
	log.Info("removed the link from the target", "origins", NamesFor(name).Origin+", "+NamesFor(name).Origin2)
	return nil
}

// RemoveLinkState removes the link's guard and rows from the target, and
// the pglink schema when no other link is left in it.
func RemoveLinkState(ctx context.Context, conn *pgx.Conn, name string) error {
	exists, err := Exists(ctx, conn)
	if err != nil || !exists {
		return err
	}
	var others int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pglink.links WHERE name <> $1`, name).Scan(&others); err != nil {
		return fmt.Errorf("target: count links: %w", err)
	}
	if err := UnguardTables(ctx, conn, NamesFor(name), others > 0); err != nil {
		return err
	}
	sql := deleteLinkSQL
	args := []any{name}
	if others == 0 {
		sql, args = `DROP SCHEMA pglink CASCADE`, nil
	}
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("target: remove link %s: %w", name, err)
	}
	return nil
}

// deleteLinkSQL removes link $1's rows. pglink's sessions on the target
// run with session_replication_role = replica, in which foreign keys do
// not act: the rows that refer to the link go first, by name.
const deleteLinkSQL = `WITH t AS (DELETE FROM pglink.tables WHERE link = $1),
	p AS (DELETE FROM pglink.progress WHERE link = $1)
DELETE FROM pglink.links WHERE name = $1`
