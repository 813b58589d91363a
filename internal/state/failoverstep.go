package state

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
)

func FailoverLeaseKey(link string) int64 {
	h := fnv.New64a()
	h.Write([]byte(NamesFor(link).LockKey + "/failover"))
	return int64(h.Sum64())
}

// FailoverRuns reports whether some process holds the link's failover
// lease now.
func FailoverRuns(ctx context.Context, conn *pgx.Conn, link string) (bool, error) {
	var held bool
	if err := conn.QueryRow(ctx, advisoryHeldSQL(FailoverLeaseKey(link))).Scan(&held); err != nil {
		return false, fmt.Errorf("target: check the failover lease of link %s: %w", link, err)
	}
	return held, nil
}

// FailoverStep is a step a failover records in the link's failover_step: "begin" from its
// start, "open" once it begins to make the target writable (after which
// nothing is undone), "cut" with the phase failed_over once it begins to
// cut the link (stop it, drop the slot), "done" at its end. A failover
// run as a script (pglink failover --script) records them followed by
// ScriptMark: a script holds no failover lease, so pglink cannot tell one
// that runs from one that was interrupted, and takes over neither.
type FailoverStep string

// Failover steps, and the mark of a script's.
const (
	// FailoverStepReverse: a planned failover with --reverse creates the
	// reverse link's slot and publication on the target (before it opens).
	FailoverStepReverse FailoverStep = "reverse"
	FailoverStepOpen    FailoverStep = "open"
	FailoverStepCut     FailoverStep = "cut"
	FailoverStepDone    FailoverStep = "done"
	ScriptMark                       = " (script)"
)

// ByScript says whether the step was recorded by a failover script.
func (s FailoverStep) ByScript() bool { return strings.HasSuffix(string(s), ScriptMark) }

// step is the step without a script's mark.
func (s FailoverStep) step() FailoverStep {
	return FailoverStep(strings.TrimSuffix(string(s), ScriptMark))
}

// Opened says whether a failover that recorded the step had begun to make
// the target writable: the target may have taken writes since.
func (s FailoverStep) Opened() bool {
	return s.step() == FailoverStepOpen || s.step() == FailoverStepCut
}

// Stage says, for people, how far a failover that recorded the step had
// got.
func (s FailoverStep) Stage() string {
	switch s.step() {
	case FailoverStepCut:
		return "the target takes writes; it had begun to cut the link, so the source may still hold the link's slot"
	case FailoverStepOpen:
		return "it had begun to make the target writable"
	}
	return "it had not made the target writable"
}
