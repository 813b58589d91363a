package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"
)

// Workload writes to a shop made by CreateShop, from several clients at
// once: inserts, updates (of TOASTed rows with and without touching the
// large value, of keys, of rows without a key), and deletes.
type Workload struct {
	connString  string
	clients     int
	expectFence atomic.Bool
	committed   atomic.Int64
	conflicts   atomic.Int64
	// id ranges read when Run starts
	customers, orders, products int64
}

// NewWorkload prepares a workload of clients concurrent sessions on the
// database connString names.
func NewWorkload(connString string, clients int) *Workload {
	return &Workload{connString: connString, clients: max(clients, 1)}
}

// Committed returns the number of transactions committed so far.
func (w *Workload) Committed() int64 { return w.committed.Load() }

// Conflicts returns the number of transactions rolled back because they
// met a concurrent one (deadlock, unique or foreign key race): normal
// under concurrency and not errors.
func (w *Workload) Conflicts() int64 { return w.conflicts.Load() }

// Run writes until ctx ends, then returns nil; it returns early with the
// first error that is not a conflict between its own clients.
func (w *Workload) Run(ctx context.Context) error {
	conns := make([]*pgx.Conn, w.clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	for i := range conns {
		c, err := pgx.Connect(ctx, w.connString)
		if err != nil && ctx.Err() != nil {
			return nil // stopped before it began
		}
		if err != nil {
			return fmt.Errorf("workload: connect: %w", err)
		}
		conns[i] = c
	}
	err := conns[0].QueryRow(ctx, `SELECT (SELECT max(id) FROM shop.customers), (SELECT max(id) FROM shop.orders),
		(SELECT max(id) FROM shop.products)`).Scan(&w.customers, &w.orders, &w.products)
	if err != nil {
		return fmt.Errorf("workload: read the shop's id ranges (was it made by CreateShop?): %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	for i, c := range conns {
		g.Go(func() error { return w.client(gctx, c, uint64(i)) })
	}
	return g.Wait()
}

func (w *Workload) client(ctx context.Context, conn *pgx.Conn, seed uint64) error {
	rnd := rand.New(rand.NewPCG(seed, 42))
	for ctx.Err() == nil {
		op := pickOp(rnd)
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return op.run(ctx, tx, w, rnd) })
		switch {
		case err == nil:
			w.committed.Add(1)
		case ctx.Err() != nil:
			return nil
		case isConflict(err):
			w.conflicts.Add(1)
		case w.expectFence.Load() && isFenced(err):
			return nil // the failover blocked writes on the source: this client is done
		default:
			return fmt.Errorf("workload %s: %w", op.name, err)
		}
	}
	return nil
}

// ExpectFence tells the workload that a failover is about to block writes
// on the source: clients that are refused or disconnected then stop
// quietly instead of failing.
func (w *Workload) ExpectFence() { w.expectFence.Store(true) }

// isFenced reports the errors a client sees when a failover blocks writes:
// a read-only refusal, or its session ended.
func isFenced(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "25006" || pgErr.Code == "57P01"
	}
	return pgconn.SafeToRetry(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "unexpected EOF")
}

// isConflict reports errors that concurrent clients cause one another:
// serialization failure, deadlock, and unique or foreign key races.
func isConflict(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40001", "40P01", "23505", "23503":
		return true
	}
	return false
}

func (w *Workload) customer(rnd *rand.Rand) int64 { return 1 + rnd.Int64N(w.customers) }
func (w *Workload) order(rnd *rand.Rand) int64    { return 1 + rnd.Int64N(w.orders) }
func (w *Workload) product(rnd *rand.Rand) int64  { return 1 + rnd.Int64N(w.products) }

// largeProduct returns a product whose description is stored out of line
// (CreateShop gives every 25th product a large one).
func (w *Workload) largeProduct(rnd *rand.Rand) int64 {
	return 1 + 25*rnd.Int64N(max((w.products+24)/25, 1))
}
