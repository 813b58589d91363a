package link

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/apply"
	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/seed"
	"github.com/pglink/pglink/internal/state"
	"github.com/pglink/pglink/internal/wait"
)

// runner drives one link through its phases.
type runner struct {
	cfg      Config
	src, tgt *endpoint.Endpoint
	names    state.Names
	log      *slog.Logger
	srcConn  *pgx.Conn // control session on the source
	tgtConn  *pgx.Conn // control session on the target (pglink settings)
	row      *state.Link
	// createdDB is set when this process created the target database, so
	// a failed creation of the link removes it again.
	createdDB bool
	// isNew is set when this process created the link.
	isNew  bool
	tables []catalog.Table // the link's tables, as the source has them now
	// heartbeatLSN is where the last heartbeat went into the source's WAL
	// (see heartbeat): its transaction is still to come while the apply is
	// before it.
	heartbeatLSN atomic.Uint64
	// healthy is set once the running replication session has moved
	// changes (or is caught up): its failure starts the backoff anew.
	healthy atomic.Bool
	// stale are the apply sessions of earlier replication sessions, ended
	// at the next one's start when still there (see endStaleSessions).
	stale []targetSession
	// lease is the link's lease, kept while the process runs: seeding and
	// streaming are bound to it (see lease.bind).
	lease *state.Lease
	// srcID is the source database's identity, recorded with the link.
	srcID catalog.Identity
	// binaryOff is set once a session ended on a value in binary form the
	// apply could not pass (see binaryFallback): the process streams in
	// text from then on.
	binaryOff atomic.Bool
	// postDump is the post-data schema dumped while the tables copy (see
	// copyTables), for the post-data step of the same process.
	postDump *seed.SectionDump
	// earlyBuilt are the post-data statements built during the copy.
	earlyBuilt map[string]bool
}

func newRunner(cfg Config) (*runner, error) {
	if err := state.ValidateName(cfg.Name); err != nil {
		return nil, err
	}
	if cfg.Schema == "" {
		cfg.Schema = SchemaCopy
	}
	if cfg.Schema != SchemaCopy && cfg.Schema != SchemaExisting {
		return nil, fmt.Errorf("invalid --schema %q: use %q (copy the schema with pg_dump) or %q (the target already has the tables)", cfg.Schema, SchemaCopy, SchemaExisting)
	}
	if cfg.DDL != "" {
		if err := state.ValidDDLMode(cfg.DDL); err != nil {
			return nil, err
		}
	}
	if cfg.Jobs <= 0 {
		cfg.Jobs = runtime.NumCPU()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	src, tgt, err := state.ParseEndpoints(cfg.Source, cfg.Target)
	if err != nil {
		return nil, err
	}
	if cfg.Live == nil {
		cfg.Live = NewLive(cfg.Name)
	}
	cfg.Live.SetEndpoints(src.Describe(), tgt.Describe())
	return &runner{cfg: cfg, src: src, tgt: tgt, names: state.NamesFor(cfg.Name),
		log: cfg.Logger.With("link", cfg.Name)}, nil
}

func (r *runner) close(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	if r.srcConn != nil {
		r.srcConn.Close(ctx)
	}
	if r.tgtConn != nil {
		r.tgtConn.Close(ctx)
	}
}

// Run creates the link or resumes it, then seeds and streams until ctx ends
// (a clean stop, returning nil) or a permanent error.
func Run(ctx context.Context, cfg Config) error {
	r, err := newRunner(cfg)
	if err != nil {
		return err
	}
	defer r.close(ctx)
	if r.srcConn, err = r.src.Connect(ctx); err != nil {
		return err
	}
	if r.tgtConn, r.createdDB, err = connectTarget(ctx, r.tgt); err != nil {
		return explainTargetRefusal(ctx, cfg.Target, err)
	}
	// Before anything is made or changed on either side: a target that is
	// the source itself would have its tables emptied.
	if r.srcID, err = state.SourceIdentity(ctx, r.srcConn, r.tgtConn, r.src, r.tgt); err != nil {
		return err
	}
	if err := checkTargetRights(ctx, r.tgtConn, true); err != nil {
		r.dropCreatedDB(context.WithoutCancel(ctx))
		return err
	}
	if err := state.Ensure(ctx, r.tgtConn); err != nil {
		return err
	}
	l, err := state.AcquireLease(ctx, r.tgt, cfg.Name)
	if err != nil {
		return err
	}
	defer l.Release(ctx)
	l.Keep(ctx, r.log, true)
	r.lease = l
	defer r.guardWAL(ctx)()
	if err := r.createOrResume(ctx); err != nil {
		return err
	}
	err = r.drive(ctx)
	if ctx.Err() != nil {
		r.log.Info("link stopped; run the same command again to resume")
		return nil
	}
	return err
}

// drive moves the link through its phases until ctx ends.
func (r *runner) drive(ctx context.Context) error {
	for {
		r.cfg.Live.SetState(string(r.row.Phase))
		switch r.row.Phase {
		case state.PhaseSeeding:
			if err := r.seedWithRetry(ctx); err != nil {
				return err
			}
			r.row.Phase = state.PhaseReplicating
			defer r.analyzeInBackground(ctx)()
		case state.PhaseReplicating, state.PhaseBroken:
			// The guard again: a link made by an older pglink, or one whose
			// guard someone removed, is guarded in full before it streams.
			if err := r.guard(ctx); err != nil {
				return err
			}
			return r.replicate(ctx)
		case state.PhaseFailingOver:
			return fmt.Errorf("link %s is failing over: a pglink failover runs it, or one was interrupted (pglink status says which); run that failover again to undo or finish an interrupted one", r.cfg.Name)
		case state.PhaseFailedOver:
			return failedOverError(fmt.Sprintf("link %s is %s: it cannot be started again; use pglink status, or pglink drop to remove what is left", r.cfg.Name, r.row.Phase))
		default:
			return fmt.Errorf("link %s has an unknown phase %q", r.cfg.Name, r.row.Phase)
		}
	}
}

// seedWithRetry seeds, retrying with backoff when a connection is lost.
// A new link that fails before its slot exists is removed again, so a bad
// start leaves nothing behind; later failures keep what was done, for the
// next start to resume.
func (r *runner) seedWithRetry(ctx context.Context) error {
	delay := time.Duration(0)
	for {
		err := r.seedBound(ctx)
		if err == nil || ctx.Err() != nil || errors.Is(err, state.ErrLeaseTaken) {
			return err
		}
		lost := errors.Is(err, state.ErrLeaseLost)
		if r.isNew && r.row.SeedStep == state.StepSchema && !lost {
			r.undoCreate(ctx)
			return fmt.Errorf("%w\nNothing was left behind: the new link was removed again", err)
		}
		r.recordError(ctx, err)
		r.cfg.Live.NoteError(err, true)
		if !lost && !endpoint.IsConnectionLost(err) {
			return fmt.Errorf("%w\nThe link keeps what it has done: fix the cause and run pglink start again to resume, or pglink drop to remove it", err)
		}
		delay = nextBackoff(delay)
		r.log.Warn("seeding interrupted; retrying", "side", sideOf(err), "error", err, "in", delay)
		if err := wait.Sleep(ctx, delay); err != nil {
			return err
		}
		r.reconnectControlOrLog(ctx)
	}
}

// seedBound seeds while this process holds the link's lease: the seeding
// stops the moment the lease is lost.
func (r *runner) seedBound(ctx context.Context) error {
	bctx, unbind, err := r.lease.Bind(ctx)
	if err != nil {
		return err
	}
	defer unbind()
	return r.lease.LostFrom(bctx, r.seed(bctx))
}

// createOrResume loads the link, or creates it when the target has none
// of that name. A new link that fails before it exists in full is removed
// again, so bad input leaves nothing behind.
func (r *runner) createOrResume(ctx context.Context) error {
	row, err := state.Load(ctx, r.tgtConn, r.cfg.Name)
	if err == nil {
		r.row = row
		return r.resume(ctx)
	}
	if !errors.Is(err, state.ErrNoLink) {
		return err
	}
	if err := r.create(ctx); err != nil {
		r.undoCreate(ctx)
		return err
	}
	r.isNew = true
	r.row, err = state.Load(ctx, r.tgtConn, r.cfg.Name)
	return err
}

func (r *runner) resume(ctx context.Context) error {
	if !r.srcID.Matches(r.row.SourceSystem) {
		return fmt.Errorf("source: link %s was made from %s (database %s), but the source given is a different database (%s); give the link's source, or another --name", r.cfg.Name, r.row.SourceDesc, r.row.SourceSystem, r.srcID.Key())
	}
	if r.srcID.Key() != r.row.SourceSystem {
		// Recorded by an older pglink: the server's identity joins it.
		if err := state.RecordSourceSystem(ctx, r.tgtConn, r.cfg.Name, r.srcID.Key()); err != nil {
			return err
		}
	}
	var err error
	r.tables, err = catalog.Tables(ctx, r.srcConn, catalog.Filter{Include: r.row.Include, Exclude: r.row.Exclude})
	if err != nil {
		return fmt.Errorf("source: list tables: %w", err)
	}
	if err := r.resumeCapture(ctx); err != nil {
		return err
	}
	r.log.Info("resuming link", "phase", r.row.Phase, "source", r.src.Describe(), "target", r.tgt.Describe())
	return nil
}

func (r *runner) create(ctx context.Context) error {
	var err error
	r.tables, err = catalog.Tables(ctx, r.srcConn, catalog.Filter{Include: r.cfg.Tables, Exclude: r.cfg.ExcludeTables})
	if err != nil {
		return fmt.Errorf("source: list tables: %w", err)
	}
	probs, err := r.checks(ctx)
	if err != nil {
		return err
	}
	if len(probs) > 0 {
		return &ProblemsError{Problems: probs}
	}
	if r.cfg.Schema == SchemaExisting {
		r.log.Info("target: with --schema existing pglink empties each target table before it copies the source's rows into it")
	}
	if err := r.insertLink(ctx, r.srcID.Key()); err != nil {
		return err
	}
	if err := state.CreatePublication(ctx, r.srcConn, r.names.Publication, r.cfg.Name, r.tables); err != nil {
		return err
	}
	// Before the slot: its snapshot holds the schema changes before it,
	// and the stream every one after.
	if err := r.setUpCapture(ctx, cmp.Or(r.cfg.DDL, state.DDLReplicate), ""); err != nil {
		return err
	}
	r.log.Info("link created", "source", r.src.Describe(), "target", r.tgt.Describe(), "tables", len(r.tables))
	return nil
}

// checks gathers everything that blocks a new link, on both sides.
func (r *runner) checks(ctx context.Context) ([]Problem, error) {
	probs, err := checkSource(ctx, r.srcConn, r.tables, r.log)
	if err != nil {
		return nil, err
	}
	slot, err := state.LookupSlot(ctx, r.srcConn, r.names.Slot)
	if err != nil {
		return nil, err
	}
	if slot.Exists {
		probs = append(probs, Problem{endpoint.Source,
			fmt.Sprintf("a replication slot named %s already exists, and the target has no link %s", r.names.Slot, r.cfg.Name),
			fmt.Sprintf("choose another --name, or if the slot is a leftover of this link, run pglink drop --name %s (or SELECT pg_drop_replication_slot('%s'); on the source)", r.cfg.Name, r.names.Slot)})
	}
	pubExists, _, err := state.PublicationOwner(ctx, r.srcConn, r.names.Publication, r.cfg.Name)
	if err != nil {
		return nil, err
	}
	if pubExists {
		probs = append(probs, Problem{endpoint.Source,
			fmt.Sprintf("a publication named %s already exists, and the target has no link %s", r.names.Publication, r.cfg.Name),
			fmt.Sprintf("choose another --name, or if it is a leftover of this link run pglink drop --name %s (or DROP PUBLICATION %s; on the source)", r.cfg.Name, r.names.Publication)})
	}
	tprobs, err := checkTarget(ctx, r.tgtConn, r.tables, r.cfg, r.log)
	if err != nil {
		return nil, err
	}
	lfs, err := assess.LinkRoleFindings(ctx, r.srcConn, r.tgtConn)
	if err != nil {
		return nil, err
	}
	vfs, err := assess.LinkVersionFindings(ctx, r.srcConn, r.tgtConn, r.cfg.Schema)
	if err != nil {
		return nil, err
	}
	logWarnings(r.log, vfs)
	return append(append(append(probs, tprobs...), problems(lfs)...), problems(vfs)...), nil
}

func (r *runner) insertLink(ctx context.Context, sourceID string) error {
	tx, err := r.tgtConn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("target: record link %s: %w", r.cfg.Name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	_, err = tx.Exec(ctx, `INSERT INTO pglink.links (name, phase, seed_step, source_desc, source_system, source_db,
		target_db, tables_include, tables_exclude, schema_mode) VALUES ($1, 'seeding', 'schema', $2, $3, $4, $5, $6, $7, $8)`,
		r.cfg.Name, r.src.Describe(), sourceID, r.src.Database(), r.tgt.Database(), nonNil(r.cfg.Tables),
		nonNil(r.cfg.ExcludeTables), r.cfg.Schema)
	if err != nil {
		return fmt.Errorf("target: record link %s: %w", r.cfg.Name, err)
	}
	if _, err = tx.Exec(ctx, `INSERT INTO pglink.progress (link) VALUES ($1)`, r.cfg.Name); err != nil {
		return fmt.Errorf("target: record link %s: %w", r.cfg.Name, err)
	}
	for _, t := range r.tables {
		_, err = tx.Exec(ctx, `INSERT INTO pglink.tables (link, table_schema, table_name, est_rows, est_bytes)
			VALUES ($1, $2, $3, $4, $5)`, r.cfg.Name, t.Schema, t.Name, max(t.EstRows, 0), t.SizeBytes)
		if err != nil {
			return fmt.Errorf("target: record table %s: %w", t.Key(), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("target: record link %s: %w", r.cfg.Name, err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// undoCreate removes what a failed creation made: the publication, the
// link's rows, and the pglink schema when no link is left in it.
func (r *runner) undoCreate(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	if err := state.DropPublicationIfOurs(ctx, r.srcConn, r.names.Publication, r.cfg.Name); err != nil {
		r.log.Warn("could not remove the publication of the failed link", "error", err)
	}
	if err := state.RemoveCapture(ctx, r.srcConn, r.cfg.Name); err != nil {
		r.log.Warn("could not remove the DDL capture of the failed link", "error", err)
	}
	if err := state.RemoveLinkState(ctx, r.tgtConn, r.cfg.Name); err != nil {
		r.log.Warn("could not remove the state of the failed link", "error", err)
	}
	r.dropCreatedDB(ctx)
}

// dropCreatedDB removes the target database when this process created it.
func (r *runner) dropCreatedDB(ctx context.Context) {
	if !r.createdDB {
		return
	}
	r.tgtConn.Close(ctx)
	r.tgtConn = nil
	sql := "DROP DATABASE IF EXISTS " + pgx.Identifier{r.tgt.Database()}.Sanitize() + " WITH (FORCE)"
	if err := adminExec(ctx, r.tgt, sql); err != nil {
		r.log.Warn("could not remove the target database created for the failed link", "error", err)
	}
}

// recordError keeps the error in the link's row for pglink status.
func (r *runner) recordError(ctx context.Context, err error) {
	if err == nil || ctx.Err() != nil {
		return
	}
	rerr := state.ControlQuery(context.WithoutCancel(ctx), endpoint.Target, "the record of an error", func(ctx context.Context) error {
		remedy := remedyFor(err)
		var refused *apply.SchemaChangeError
		var held *ErrDDLHeld
		if errors.As(err, &refused) && !errors.As(err, &held) {
			remedy = "the target refused the source's schema change; " + ddlRemedy(r.cfg.Name)
		}
		return state.SetError(ctx, r.tgtConn, r.cfg.Name, err.Error(), remedy)
	})
	if rerr != nil {
		r.log.Warn("could not record the error in the target", "error", rerr)
	}
}

// remedyFor gives the fix for an error when the error carries one.
func remedyFor(err error) string {
	var held *ErrDDLHeld
	if errors.As(err, &held) {
		return ddlRemedy(held.Link)
	}
	var ee *endpoint.Error
	if errors.As(err, &ee) {
		return ee.Remedy
	}
	var se *endpoint.SilentError
	if errors.As(err, &se) {
		return fmt.Sprintf("pglink reconnects by itself; if this comes back, check the network between pglink and the %s (a firewall or NAT that drops idle connections, packet loss) and that its server answers", se.Side)
	}
	if endpoint.IsConnectionLost(err) {
		return "pglink retries by itself; check that both servers run and can be reached"
	}
	return "fix the cause named in the error; pglink retries, or run pglink start again"
}

// failedOverError refuses to start a failed-over link. It is
// state.ErrFailedOver for callers that run links on their own (serve's
// supervisor), so that they leave such a link alone instead of retrying.
type failedOverError string

func (e failedOverError) Error() string        { return string(e) }
func (e failedOverError) Is(target error) bool { return target == state.ErrFailedOver }
