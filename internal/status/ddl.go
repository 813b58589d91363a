package status

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/quote"
	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
)

// recentDDL is how many of the last schema changes a status shows.
const recentDDL = 10

// ddlStatus adds the link's DDL mode, its last schema changes, and
// warnings for those the link holds before or left out.
func ddlStatus(ctx context.Context, conn *pgx.Conn, st *report.Status) {
	s, err := state.LoadDDL(ctx, conn, st.Name)
	if err != nil {
		st.Warnings = append(st.Warnings, fmt.Sprintf("target: could not read the link's schema changes: %v", err))
		return
	}
	st.DDLMode = s.Mode
	if s.Note != "" {
		st.Warnings = append(st.Warnings, "source: "+s.Note)
	}
	if st.DDL, err = state.RecentDDL(ctx, conn, st.Name, recentDDL); err != nil {
		st.Warnings = append(st.Warnings, err.Error())
	}
	for _, d := range st.DDL {
		if d.Event == state.EventDDLIgnored {
			st.Warnings = append(st.Warnings, fmt.Sprintf("a schema change of the source at %s was not carried to the target: %s; make it on the target by hand if the target needs it",
				d.SourceLSN, quote.FirstLine(d.Statement, 200)))
		}
	}
	h, err := state.LoadHeldDDL(ctx, conn, st.Name)
	if err != nil {
		st.Warnings = append(st.Warnings, err.Error())
	} else if h != nil && h.Decision == "" {
		st.Warnings = append(st.Warnings, fmt.Sprintf("the link holds before the source's schema change at %s (%s): %s; run pglink resume-ddl --name %s --apply or --skip",
			h.LSN, quote.FirstLine(h.Reason, 300), quote.FirstLine(h.Statement, 200), st.Name))
	}
}
