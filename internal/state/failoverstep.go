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

// Steps a failover records in the link's failover_step: "begin" from its
// start, "open" once it begins to make the target writable (after which
// nothing is undone), "cut" with the phase failed_over once it begins to
// cut the link (stop it, drop the slot), "done" at its end. A failover
// run as a script (pglink failover --script) records them followed by
// ScriptMark: a script holds no failover lease, so pglink cannot tell one
// that runs from one that was interrupted, and takes over neither.
const (
	FailoverStepOpen = "open"
	FailoverStepCut  = "cut"
	FailoverStepDone = "done"
	ScriptMark       = " (script)"
)

// ByScript says whether step was recorded by a failover script.
func ByScript(step string) bool { return strings.HasSuffix(step, ScriptMark) }

// FailoverOpened says whether a failover that recorded step had begun to
// make the target writable: the target may have taken writes since.
func FailoverOpened(step string) bool {
	step = strings.TrimSuffix(step, ScriptMark)
	return step == FailoverStepOpen || step == FailoverStepCut
}

// FailoverStage says, for people, how far a failover that recorded step
// had got.
func FailoverStage(step string) string {
	switch strings.TrimSuffix(step, ScriptMark) {
	case FailoverStepCut:
		return "the target takes writes; it had begun to cut the link, so the source may still hold the link's slot"
	case FailoverStepOpen:
		return "it had begun to make the target writable"
	}
	return "it had not made the target writable"
}
