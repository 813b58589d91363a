package link

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/endpoint"
)

// A table created on the source while linked (in the linked schemas,
// selected by the link's filters) joins the link the way native table
// synchronisation does. The carrier runs the CREATE on the target and
// records the table as joining, in the apply's transaction (join.go,
// joinNew); once that is committed, the joiner (joiner.go) adds the table
// to the publication, takes a snapshot with a temporary slot, whose
// consistent point C it announces here, copies the table at it, and
// records C as the table's sync LSN. The apply asks joins about each
// change of a joining table (decide): one that committed before C is in
// the copy and skipped; one at or after C is applied once the copy is
// recorded, and waits for it until then.

// joinPhase is where the copy of a joining table is.
type joinPhase int

const (
	joinIdle    joinPhase = iota // no snapshot in use: the next one is taken after now
	joinTaking                   // a snapshot is being taken; its position is not known yet
	joinCopying                  // copying at snapshot position at
	joinDone                     // copied at at, and recorded
)

// joinTable is a table joining the link.
type joinTable struct {
	key       string     // schema.name
	rel       uint32     // the source's oid, 0 when not known
	createdAt change.LSN // commit position of the source transaction that created it, when this session carried it
	phase     joinPhase
	at        change.LSN // position of the latest snapshot taken for its copy
}

// joins holds the tables joining the link in one replication session,
// shared by the carrier, the apply and the joiner.
type joins struct {
	filter catalog.Filter
	wake   chan struct{}      // wakes the joiner: a table was carried
	src    *endpoint.Endpoint // for the carrier's look-ups, on conn
	conn   *pgx.Conn          // used by the carrier (the apply's goroutine) only

	mu      sync.Mutex
	tables  map[string]*joinTable
	changed chan struct{} // closed (and replaced) whenever a table's phase moves
}

func newJoins(src *endpoint.Endpoint, filter catalog.Filter) *joins {
	return &joins{src: src, filter: filter, wake: make(chan struct{}, 1), tables: map[string]*joinTable{}, changed: make(chan struct{})}
}

// add records a joining table (again).
func (j *joins) add(key string, rel uint32, createdAt change.LSN) {
	j.mu.Lock()
	t, ok := j.tables[key]
	if !ok {
		t = &joinTable{key: key}
		j.tables[key] = t
	}
	if rel != 0 {
		t.rel = rel
	}
	if createdAt != 0 {
		t.createdAt, t.phase, t.at = createdAt, joinIdle, 0
	}
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// ensure records a joining table the joiner found on the target, without
// waking it.
func (j *joins) ensure(key string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.tables[key]; !ok {
		j.tables[key] = &joinTable{key: key}
	}
}

// set moves a table's copy to phase, at position at, and wakes those
// waiting for it.
func (j *joins) set(key string, phase joinPhase, at change.LSN) {
	j.mu.Lock()
	defer j.mu.Unlock()
	t, ok := j.tables[key]
	if !ok {
		return
	}
	t.phase = phase
	if at != 0 {
		t.at = at
	}
	close(j.changed)
	j.changed = make(chan struct{})
}

// forget drops a table that left (dropped on both sides).
func (j *joins) forget(key string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.tables, key)
	close(j.changed)
	j.changed = make(chan struct{})
}

// byRel returns the key of the joining table with source oid rel.
func (j *joins) byRel(rel uint32) (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for k, t := range j.tables {
		if t.rel == rel && t.phase != joinDone {
			return k, true
		}
	}
	return "", false
}

// decide is apply.Options.Joining: whether the copy of the joining table
// key holds the change of the source transaction that commits at lsn.
// Every snapshot is taken after the joiner moved the table out of
// joinIdle, under the lock, so a transaction the apply has while the
// table is idle commits before the snapshot that will be copied.
func (j *joins) decide(ctx context.Context, key string, lsn change.LSN) (skip, handled bool, err error) {
	for {
		j.mu.Lock()
		t, ok := j.tables[key]
		if !ok {
			j.mu.Unlock()
			return false, false, nil
		}
		changed := j.changed
		switch {
		case t.phase == joinDone:
			j.mu.Unlock()
			return lsn < t.at, true, nil
		case lsn == t.createdAt, t.phase == joinIdle, t.phase == joinCopying && lsn < t.at:
			j.mu.Unlock()
			return true, true, nil
		}
		j.mu.Unlock()
		select {
		case <-ctx.Done():
			return false, true, ctx.Err()
		case <-changed:
		}
	}
}

// waitDDL waits, before a schema change of the source at lsn runs on the
// target, until it may: a schema change of a joining table that its copy's
// snapshot does not hold must wait for the copy (whose COPY matches the
// table as it was then); one the snapshot holds runs at once (it waits
// for the copy's locks on the target, and a copy that no longer matches
// the table fails and is taken again from a later snapshot).
func (j *joins) waitDDL(ctx context.Context, p ddlPayload, lsn change.LSN) error {
	if j == nil {
		return nil
	}
	for _, o := range append(append([]ddlObject(nil), p.Commands...), p.Dropped...) {
		if o.Rel == nil {
			continue
		}
		if key, ok := j.byRel(*o.Rel); ok {
			if _, _, err := j.decide(ctx, key, lsn); err != nil {
				return err
			}
		}
	}
	return nil
}
