package link

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
)

// Problem is a reason the link cannot start, with its fix. Several
// problems are reported together so the user fixes them in one round.
type Problem struct {
	Side   endpoint.Side
	What   string
	Remedy string
}

// ProblemsError lists what blocks a link.
type ProblemsError struct{ Problems []Problem }

func (e *ProblemsError) Error() string {
	var b strings.Builder
	b.WriteString("the link cannot start:")
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n- %s: %s", p.Side, p.What)
		if p.Remedy != "" {
			fmt.Fprintf(&b, "\n  Fix: %s", p.Remedy)
		}
	}
	b.WriteString("\npglink assess shows these with every warning, and pglink prepare applies the safe fixes")
	return b.String()
}

// checkSource finds what on the source blocks logical replication of
// tables: the blockers of assess.CheckSource, the checks pglink assess runs.
func checkSource(ctx context.Context, conn *pgx.Conn, tables []catalog.Table, log *slog.Logger) ([]Problem, error) {
	fs, err := assess.CheckSource(ctx, conn, tables)
	if err != nil {
		return nil, err
	}
	logWarnings(log, fs)
	return problems(fs), nil
}

// logWarnings logs the findings of severity Warning: they do not stop a
// link, but the user should read them before relying on it.
func logWarnings(log *slog.Logger, fs []assess.Finding) {
	for _, f := range fs {
		if f.Severity == assess.Warning {
			log.Warn(f.What, "side", string(f.Side), "check", f.Check, "remedy", f.Remedy)
		}
	}
}

// problems keeps the blockers of findings.
func problems(fs []assess.Finding) []Problem {
	var probs []Problem
	for _, f := range assess.Blockers(fs) {
		probs = append(probs, Problem{Side: f.Side, What: f.What, Remedy: f.Remedy})
	}
	return probs
}
