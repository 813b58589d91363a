package state

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// HistoryEvent is one row of pglink.history.
type HistoryEvent struct {
	At     time.Time `json:"at"`
	Event  string    `json:"event"`
	Detail string    `json:"detail,omitempty"`
}

// LoadHistory returns link name's last limit events, newest first.
func LoadHistory(ctx context.Context, conn *pgx.Conn, name string, limit int) ([]HistoryEvent, error) {
	rows, err := conn.Query(ctx, `SELECT at, event, coalesce(detail, '') FROM pglink.history
		WHERE link = $1 ORDER BY at DESC LIMIT $2`, name, limit)
	if err != nil {
		return nil, fmt.Errorf("target: read the history of link %s: %w", name, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HistoryEvent, error) {
		var e HistoryEvent
		err := r.Scan(&e.At, &e.Event, &e.Detail)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("target: read the history of link %s: %w", name, err)
	}
	return out, nil
}
