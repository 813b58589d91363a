package assess

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/quote"
)

// Options say what to assess.
type Options struct {
	Source string // connection string of the source
	Target string // connection string of the target; empty to assess the source only
	// Database, when set, replaces the source connection string's database.
	Database              string
	Tables, ExcludeTables []string // the tables a link would carry, as pglink start takes them
	Schema                string   // SchemaCopy (default) or SchemaExisting
	// TruncateExisting lets --schema existing empty target tables that hold rows.
	TruncateExisting bool
	// Sample, when positive, measures the source's write rate for this long
	// and estimates seeding time, WAL held and the target's size.
	Sample   time.Duration
	CopyRate float64 // assumed copy throughput for the estimate, bytes/s; 0 for DefaultCopyRate
	Jobs     int     // parallel copy jobs for the estimate; 0 for 4
	// OnSample, when set, is called before the sampling starts.
	OnSample func(time.Duration)
}

// Report is the outcome of an assessment.
type Report struct {
	Source   Server    `json:"source"`
	Target   *Server   `json:"target,omitempty"`
	Findings []Finding `json:"findings"` // blockers first, then warnings, then information
	Blockers int       `json:"blockers"`
	Warnings int       `json:"warnings"`
	Sample   *Sample   `json:"sample,omitempty"`
	Estimate *Estimate `json:"estimate,omitempty"`
}

// Blocked tells whether pglink start would refuse to start.
func (r Report) Blocked() bool { return r.Blockers > 0 }

// Run assesses the source, and the target when given. An error means the
// assessment could not be made (the source cannot be reached, or answered
// with an error); what the checks find is in the report.
func Run(ctx context.Context, opts Options) (Report, error) {
	var rep Report
	src, err := endpoint.Parse(endpoint.Source, opts.Source)
	if err != nil {
		return rep, err
	}
	if opts.Database != "" {
		src = src.WithDatabase(opts.Database)
	}
	conn, err := src.Connect(ctx)
	if err != nil {
		return rep, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tables, err := catalog.Tables(ctx, conn, catalog.Filter{Include: opts.Tables, Exclude: opts.ExcludeTables})
	if err != nil {
		return rep, fmt.Errorf("source: list tables: %w", err)
	}
	if rep.Source, err = readServer(ctx, conn, "", true); err != nil {
		return rep, fmt.Errorf("source: %w", err)
	}
	rep.Source.Address = src.Describe()
	rep.Source.Tables = len(tables)
	for _, t := range tables {
		rep.Source.TableBytes += t.SizeBytes
	}
	rep.Source.FreeDisk, rep.Source.FreeDiskNote = freeDisk(ctx, conn, "pg_wal")
	fs, err := CheckSource(ctx, conn, tables)
	if err != nil {
		return rep, err
	}
	fs = append(fs, sizeFinding(rep.Source))
	fs = append(fs, pgDumpFindings(ctx, rep.Source.VersionNum, opts.Schema)...)
	if opts.Target == "" {
		lfs, err := LinkRoleFindings(ctx, conn, nil)
		if err != nil {
			return rep, err
		}
		fs = append(fs, lfs...)
	} else {
		tgt, tfs, err := assessTarget(ctx, opts, conn, rep.Source, tables)
		if err != nil {
			return rep, err
		}
		rep.Target = tgt
		fs = append(fs, tfs...)
	}
	if opts.Sample > 0 {
		efs, err := sampleAndEstimate(ctx, conn, opts, &rep)
		if err != nil {
			return rep, err
		}
		fs = append(fs, efs...)
	}
	rep.setFindings(fs)
	return rep, nil
}

func (r *Report) setFindings(fs []Finding) {
	rank := map[Severity]int{Blocker: 0, Warning: 1, Info: 2}
	slices.SortStableFunc(fs, func(a, b Finding) int { return rank[a.Severity] - rank[b.Severity] })
	r.Findings = nonNil(fs)
	r.Blockers, r.Warnings = Count(fs, Blocker), Count(fs, Warning)
}

func sizeFinding(s Server) Finding {
	what := fmt.Sprintf("database %s takes %s; the %d tables to link take %s (with indexes and TOAST); free disk for its WAL: ",
		s.Database, formatBytes(s.SizeBytes), s.Tables, formatBytes(s.TableBytes))
	if s.FreeDisk != nil {
		what += formatBytes(*s.FreeDisk) + " (" + s.FreeDiskNote + ")"
	} else {
		what += s.FreeDiskNote
	}
	return finding(Info, endpoint.Source, "size", what, "")
}

// assessTarget connects to the target (or, when its database does not
// exist yet, to the server's maintenance database) and compares it with the
// source. A target that cannot be reached is a blocker, not an error.
func assessTarget(ctx context.Context, opts Options, srcConn *pgx.Conn, src Server, tables []catalog.Table) (*Server, []Finding, error) {
	ep, err := endpoint.Parse(endpoint.Target, opts.Target)
	if err != nil {
		return nil, nil, err
	}
	exists := true
	conn, err := pgx.ConnectConfig(ctx, ep.Config.Copy())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" {
		exists = false
		conn, err = pgx.ConnectConfig(ctx, ep.WithDatabase("postgres").Config.Copy())
	}
	if err != nil {
		return nil, []Finding{unreachable(ep, err)}, nil
	}
	defer conn.Close(context.WithoutCancel(ctx))
	db := ep.Database()
	if db == "" {
		db = ep.Config.User // the server's default, as libpq's
	}
	tgt, err := readServer(ctx, conn, db, exists)
	if err != nil {
		return nil, nil, fmt.Errorf("target: %w", err)
	}
	tgt.Address = ep.Describe()
	tgt.FreeDisk, tgt.FreeDiskNote = freeDisk(ctx, conn, "")
	fs := versionPairFindings(src.VersionNum, tgt.VersionNum, tgt.Version, opts.Schema)
	if exists {
		sfs, err := sameDatabaseFinding(ctx, srcConn, conn, src.Address, tgt.Address)
		if err != nil {
			return nil, nil, err
		}
		if len(sfs) > 0 {
			// Every other check would read the source twice: this one says all.
			return &tgt, sfs, nil
		}
		tfs, err := CheckTarget(ctx, conn, tables, opts.Schema, opts.TruncateExisting)
		if err != nil {
			return nil, nil, err
		}
		fs = append(fs, tfs...)
		lfs, err := LinkRoleFindings(ctx, srcConn, conn)
		if err != nil {
			return nil, nil, err
		}
		fs = append(fs, lfs...)
	} else {
		nfs, err := newDatabaseFindings(ctx, conn, db, tables, opts.Schema)
		if err != nil {
			return nil, nil, err
		}
		lfs, err := LinkRoleFindings(ctx, srcConn, nil)
		if err != nil {
			return nil, nil, err
		}
		fs = append(append(fs, nfs...), lfs...)
	}
	cfs, err := compareFindings(ctx, srcConn, conn, exists)
	if err != nil {
		return nil, nil, err
	}
	fs = append(fs, cfs...)
	fs = append(fs, originCapacityFindings(ctx, conn)...)
	fs = append(fs, encodingFindings(src, tgt)...)
	fs = append(fs, diskFindings(src.TableBytes, tgt.FreeDisk)...)
	return &tgt, fs, nil
}

// unreachable turns a failed connection to the target into a blocker
// with the cause and the fix the endpoint package gives.
func unreachable(ep *endpoint.Endpoint, err error) Finding {
	explained := ep.Explain(err)
	var ee *endpoint.Error
	if errors.As(explained, &ee) {
		return finding(Blocker, endpoint.Target, "reachable", ee.Cause, ee.Remedy)
	}
	return finding(Blocker, endpoint.Target, "reachable", explained.Error(), "check the target connection string")
}

// newDatabaseFindings checks a target whose database does not exist yet:
// pglink start creates it, if the user may.
func newDatabaseFindings(ctx context.Context, conn *pgx.Conn, db string, tables []catalog.Table, schema string) ([]Finding, error) {
	fs, err := targetRights(ctx, conn)
	if err != nil {
		return nil, err
	}
	fs = append(fs, tableModeFindings(tables, nil, schema)...)
	var user string
	var canCreate bool
	err = conn.QueryRow(ctx, `SELECT current_user, rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user`).Scan(&user, &canCreate)
	if err != nil {
		return nil, fmt.Errorf("target: read the user's role: %w", err)
	}
	if !canCreate {
		sql := fmt.Sprintf("CREATE DATABASE %s OWNER %s;", quote.Ident(db), quote.Ident(user))
		return append(fs, finding(Blocker, endpoint.Target, "database",
			fmt.Sprintf("database %s does not exist on the target, and user %s may not create it", db, user),
			"run as a superuser on the target: "+sql, sql)), nil
	}
	return append(fs, finding(Info, endpoint.Target, "database",
		fmt.Sprintf("database %s does not exist on the target yet; pglink start creates it", db), "")), nil
}

// compareFindings compares what the source database uses with what the
// target offers: extensions and roles.
func compareFindings(ctx context.Context, srcConn, tgtConn *pgx.Conn, installed bool) ([]Finding, error) {
	exts, err := sourceExtensions(ctx, srcConn)
	if err != nil {
		return nil, err
	}
	avail, err := targetExtensions(ctx, tgtConn, installed)
	if err != nil {
		return nil, err
	}
	fs := extensionFindings(exts, avail)
	roles, err := sourceRoles(ctx, srcConn)
	if err != nil {
		return nil, err
	}
	missing, err := missingRoles(ctx, tgtConn, roles)
	if err != nil {
		return nil, err
	}
	return append(fs, roleFindings(missing)...), nil
}

func sampleAndEstimate(ctx context.Context, conn *pgx.Conn, opts Options, rep *Report) ([]Finding, error) {
	if opts.OnSample != nil {
		opts.OnSample(opts.Sample)
	}
	s, err := TakeSample(ctx, conn, opts.Sample)
	if err != nil {
		return nil, err
	}
	rep.Sample = &s
	set, err := readSourceSettings(ctx, conn)
	if err != nil {
		return nil, err
	}
	e := EstimateFrom(SizingInput{CopyBytes: rep.Source.TableBytes, Sample: s, CopyRate: opts.CopyRate,
		Jobs: opts.Jobs, SharedBuffers: rep.Source.SharedBuffers})
	rep.Estimate = &e
	return estimateFindings(e, set.SlotKeepMB, rep.Source.FreeDisk), nil
}
