// Package assess checks whether a source database can be linked to a
// target, and turns each thing it finds into a Finding: how bad it is, on
// which side, what was found and the exact fix. pglink assess prints them
// all; pglink start runs the same checks and refuses to start on a blocker.
package assess

import (
	"strconv"
	"strings"

	"github.com/pglink/pglink/internal/endpoint"
)

// Severity says what a finding means for a link.
type Severity string

const (
	// Blocker: pglink start refuses to start until it is fixed.
	Blocker Severity = "blocker"
	// Warning: the link starts, but something will not be carried over or
	// may go wrong; read the remedy before relying on the link.
	Warning Severity = "warning"
	// Info: worth knowing, nothing to fix.
	Info Severity = "info"
)

// Finding is one result of a check.
type Finding struct {
	Severity Severity      `json:"severity"`
	Side     endpoint.Side `json:"side"`
	// Check names the check, stable for scripts: "wal_level", "replica_identity", ...
	Check  string `json:"check"`
	What   string `json:"what"`
	Remedy string `json:"remedy"`
	// SQL holds the exact statements of the remedy, when it is SQL; they
	// run on Side unless the remedy says otherwise.
	SQL []string `json:"sql"`
}

func finding(sev Severity, side endpoint.Side, check, what, remedy string, sql ...string) Finding {
	return Finding{Severity: sev, Side: side, Check: check, What: what, Remedy: remedy, SQL: nonNil(sql)}
}

// Blockers returns the findings of severity Blocker.
func Blockers(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Severity == Blocker {
			out = append(out, f)
		}
	}
	return out
}

// Count returns how many findings have severity sev.
func Count(fs []Finding, sev Severity) int {
	n := 0
	for _, f := range fs {
		if f.Severity == sev {
			n++
		}
	}
	return n
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// list joins names for a message, cutting long lists short.
func list(names []string) string {
	const most = 20
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:most], ", ") + ", and " + strconv.Itoa(len(names)-most) + " more"
}

// count says "1 table" or "3 tables".
func count(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}
