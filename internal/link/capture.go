package link

import (
	"context"
	"fmt"

	"github.com/pglink/pglink/internal/state"
)

// setUpCapture installs the source's DDL capture for mode and the truncate
// capture, signing with key (a new key when empty), and records the mode. A source that cannot
// have it falls back to --ddl ignore, said in the log and in status.
func (r *runner) setUpCapture(ctx context.Context, mode, key string) error {
	note := ""
	if key == "" {
		var err error
		if key, err = state.NewDDLKey(); err != nil {
			return err
		}
	}
	if err := r.setUpTruncateCapture(ctx, key); err != nil {
		return err
	}
	if mode != state.DDLIgnore {
		why, err := state.InstallCapture(ctx, r.srcConn, r.cfg.Name, key)
		if err != nil {
			return err
		}
		if why != "" {
			r.log.Warn("source: schema changes are not carried; the link goes on with --ddl ignore", "reason", why)
			mode, note = state.DDLIgnore, fmt.Sprintf("--ddl %s asked, but %s", mode, why)
		}
	}
	if err := state.MarkCaptureBound(ctx, r.srcConn, r.tgtConn, r.cfg.Name); err != nil {
		return err
	}
	return state.SetDDL(ctx, r.tgtConn, r.cfg.Name, mode, key, note)
}

// resumeCapture installs the capture again when the link's mode needs it
// (this pglink's version of it, in place of an older one), puts it back
// when it is missing (a link made by an older pglink, or one whose capture
// was removed), or changes the mode when --ddl was given. Schema changes made
// while it was missing are not carried.
func (r *runner) resumeCapture(ctx context.Context) error {
	if r.row.Phase == state.PhaseFailedOver {
		return nil
	}
	s, err := state.LoadDDL(ctx, r.tgtConn, r.cfg.Name)
	if err != nil {
		return err
	}
	mode := s.Mode
	if r.cfg.DDL != "" {
		mode = r.cfg.DDL
	} else if s.Note != "" {
		mode = state.DDLReplicate // the fallback: try again
	}
	installed := false
	if mode != state.DDLIgnore {
		if installed, err = state.CaptureInstalled(ctx, r.srcConn, r.cfg.Name); err != nil {
			return err
		}
	}
	if (installed || mode == state.DDLIgnore) && s.Key != "" {
		if err := r.setUpTruncateCapture(ctx, s.Key); err != nil {
			return err
		}
		if installed {
			// Put this pglink's capture in place of the one installed
			// by the last start, which may be older.
			why, err := state.InstallCapture(ctx, r.srcConn, r.cfg.Name, s.Key)
			if err != nil {
				return err
			}
			if why != "" {
				r.log.Warn("source: the DDL capture installed earlier is left as it was", "reason", why)
			}
		}
		if err := state.MarkCaptureBound(ctx, r.srcConn, r.tgtConn, r.cfg.Name); err != nil {
			return err
		}
		return state.SetDDL(ctx, r.tgtConn, r.cfg.Name, mode, "", "")
	}
	return r.setUpCapture(ctx, mode, s.Key)
}

// setUpTruncateCapture gives the source's partitions of the linked tables
// the trigger that carries a TRUNCATE of one of them (see
// state.TruncatePrefix); those that cannot have it are only logged.
func (r *runner) setUpTruncateCapture(ctx context.Context, key string) error {
	why, err := state.InstallTruncateCapture(ctx, r.srcConn, r.cfg.Name, r.names.Publication, key, func(msg string) { r.log.Info(msg) })
	if err != nil {
		return err
	}
	if why != "" {
		r.log.Warn("source: a TRUNCATE of a single partition is not carried", "reason", why)
	}
	return nil
}
