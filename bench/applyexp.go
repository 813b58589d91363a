package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/apply"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/instance"
)

// The apply experiment (figure 2b) takes the stream and the source out of
// the catch-up: the same synthetic backlog of pgbench transactions, as the
// stream would hand it over, is applied to copies of one target database
// by pglink's apply, as is and with one setting changed. It shows what the
// target and pglink spend per source transaction on each way.

// pgbenchTxn is one TPC-B-like transaction as pgoutput sends it: three
// updates and one insert.
type pgbenchTxn struct {
	aid, tid, bid, delta int
	abal, tbal, bbal     int64 // balances after the transaction
	aidBranch, tidBranch int
	commitLSN            change.LSN
	commitTime           time.Time
}

// pgbenchBacklog makes n transactions on a database that pgbench -i made
// at scale (every balance 0), with a fixed seed.
func pgbenchBacklog(n, scale int) []pgbenchTxn {
	rng := rand.New(rand.NewPCG(1, uint64(scale)))
	abal, tbal, bbal := map[int]int64{}, map[int]int64{}, map[int]int64{}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]pgbenchTxn, n)
	for i := range out {
		t := pgbenchTxn{aid: 1 + rng.IntN(100000*scale), tid: 1 + rng.IntN(10*scale), bid: 1 + rng.IntN(scale),
			delta: rng.IntN(10001) - 5000}
		t.aidBranch, t.tidBranch = (t.aid-1)/100000+1, (t.tid-1)/10+1
		abal[t.aid] += int64(t.delta)
		tbal[t.tid] += int64(t.delta)
		bbal[t.bid] += int64(t.delta)
		t.abal, t.tbal, t.bbal = abal[t.aid], tbal[t.tid], bbal[t.bid]
		t.commitLSN = change.LSN(0x10000000 + i*0x200)
		t.commitTime = base.Add(time.Duration(i) * time.Millisecond)
		out[i] = t
	}
	return out
}

// accountsFiller is pgbench_accounts.filler as pgbench -i leaves it:
// char(84), empty, so 84 spaces in text form.
var accountsFiller = strings.Repeat(" ", 84)

func pgbenchRelations() (accounts, tellers, branches, history *change.Relation) {
	col := func(name string, oid uint32, key bool) change.Column {
		return change.Column{Name: name, TypeOID: oid, TypeMod: -1, Key: key}
	}
	accounts = &change.Relation{ID: 1, Schema: "public", Name: "pgbench_accounts", ReplicaIdentity: change.IdentityDefault,
		Columns: []change.Column{col("aid", 23, true), col("bid", 23, false), col("abalance", 23, false), col("filler", 1042, false)}}
	tellers = &change.Relation{ID: 2, Schema: "public", Name: "pgbench_tellers", ReplicaIdentity: change.IdentityDefault,
		Columns: []change.Column{col("tid", 23, true), col("bid", 23, false), col("tbalance", 23, false), col("filler", 1042, false)}}
	branches = &change.Relation{ID: 3, Schema: "public", Name: "pgbench_branches", ReplicaIdentity: change.IdentityDefault,
		Columns: []change.Column{col("bid", 23, true), col("bbalance", 23, false), col("filler", 1042, false)}}
	history = &change.Relation{ID: 4, Schema: "public", Name: "pgbench_history", ReplicaIdentity: change.IdentityFull,
		Columns: []change.Column{col("tid", 23, true), col("bid", 23, true), col("aid", 23, true), col("delta", 23, true),
			col("mtime", 1114, true), col("filler", 1042, true)}}
	return
}

func text(v any) change.Value {
	return change.Value{Kind: change.ValueText, Data: []byte(fmt.Sprint(v))}
}

var null = change.Value{Kind: change.ValueNull}

// changes renders the backlog as the stream's Changes.
func (b backlogChanges) changes() []*change.Change {
	acc, tel, bra, his := pgbenchRelations()
	var out []*change.Change
	for _, t := range b {
		at := t.commitTime
		mtime := text(at.Format("2006-01-02 15:04:05.999999"))
		out = append(out,
			&change.Change{Kind: change.Begin, CommitLSN: t.commitLSN, CommitTime: at},
			&change.Change{Kind: change.Update, Rel: acc, CommitLSN: t.commitLSN,
				New: change.Tuple{text(t.aid), text(t.aidBranch), text(t.abal), text(accountsFiller)}},
			&change.Change{Kind: change.Update, Rel: tel, CommitLSN: t.commitLSN,
				New: change.Tuple{text(t.tid), text(t.tidBranch), text(t.tbal), null}},
			&change.Change{Kind: change.Update, Rel: bra, CommitLSN: t.commitLSN,
				New: change.Tuple{text(t.bid), text(t.bbal), null}},
			&change.Change{Kind: change.Insert, Rel: his, CommitLSN: t.commitLSN,
				New: change.Tuple{text(t.tid), text(t.bid), text(t.aid), text(t.delta), mtime, null}},
			&change.Change{Kind: change.Commit, CommitLSN: t.commitLSN, EndLSN: t.commitLSN + 0x100, CommitTime: at})
	}
	return out
}

type backlogChanges []pgbenchTxn

// applyVariant is one way of applying the backlog.
type applyVariant struct {
	Name  string
	run   func(ctx context.Context, conn *pgx.Conn, origin string, txns []pgbenchTxn) error
	delay time.Duration // when set, the session reaches the target through a delayProxy of this delay each way
}

// applyResult is one variant's measurement.
type applyResult struct {
	Name       string
	Elapsed    time.Duration
	TargetCPU  time.Duration
	ClientCPU  time.Duration // this process: pglink's apply runs in it
	Txns       int
	Statements int
}

func (r applyResult) TPS() float64 { return float64(r.Txns) / r.Elapsed.Seconds() }

// pglinkApply applies the backlog with pglink's own apply, as a link
// does (on two sessions), with opts on top of its defaults and sql run on
// each session first.
func pglinkApply(opts apply.Options, sql ...string) func(context.Context, *pgx.Conn, string, []pgbenchTxn) error {
	return pglinkApplyOn(2, opts, sql...)
}

// pglinkApplyOn is pglinkApply on one or two target sessions.
func pglinkApplyOn(sessions int, opts apply.Options, sql ...string) func(context.Context, *pgx.Conn, string, []pgbenchTxn) error {
	return func(ctx context.Context, conn *pgx.Conn, origin string, txns []pgbenchTxn) error {
		for _, s := range sql {
			if _, err := conn.Exec(ctx, s); err != nil {
				return err
			}
		}
		if sessions > 1 {
			second, err := pgx.ConnectConfig(ctx, conn.Config())
			if err != nil {
				return err
			}
			defer second.Close(context.WithoutCancel(ctx))
			if err := apply.PrepareSession(ctx, second); err != nil {
				return err
			}
			for _, s := range sql {
				if _, err := second.Exec(ctx, s); err != nil {
					return err
				}
			}
			opts.Second, opts.SecondOrigin = second, origin+".2"
			if err := apply.EnsureOrigin(ctx, second, opts.SecondOrigin); err != nil {
				return err
			}
			defer apply.DropOrigin(context.WithoutCancel(ctx), conn, opts.SecondOrigin)
		}
		chs := backlogChanges(txns).changes()
		in := make(chan *change.Change, len(chs))
		for _, c := range chs {
			in <- c
		}
		close(in)
		opts.Conn, opts.Origin = conn, origin
		a := apply.New(opts)
		if err := a.Run(ctx, in); err != nil {
			return err
		}
		if st := a.Stats(); st.Txns != int64(len(txns)) || st.Conflicts != 0 {
			return fmt.Errorf("applied %d of %d transactions, %d conflicts", st.Txns, len(txns), st.Conflicts)
		}
		return nil
	}
}

// applyExperiment makes a pgbench database at scale on inst, then applies
// the same backlog of txns transactions to a fresh copy of it with each
// variant, reps times in turn, checking each copy's balances and history
// afterwards. It returns the measurements by variant.
func applyExperiment(ctx context.Context, inst *instance.Instance, scale, txns, reps int, variants []applyVariant) ([][]applyResult, error) {
	const base = "bench_apply_base"
	if err := createDB(ctx, inst, base); err != nil {
		return nil, err
	}
	defer dropDB(context.WithoutCancel(ctx), inst, base)
	if err := pgbenchInit(ctx, inst, base, scale); err != nil {
		return nil, err
	}
	backlog := pgbenchBacklog(txns, scale)
	out := make([][]applyResult, len(variants))
	for range reps {
		for i, v := range variants {
			db := fmt.Sprintf("bench_apply_%d", i)
			r, err := runVariant(ctx, inst, base, db, v, backlog)
			dropDB(context.WithoutCancel(ctx), inst, db)
			if err != nil {
				return out, fmt.Errorf("%s: %w", v.Name, err)
			}
			out[i] = append(out[i], r)
		}
	}
	return out, nil
}

func runVariant(ctx context.Context, inst *instance.Instance, base, db string, v applyVariant, backlog []pgbenchTxn) (applyResult, error) {
	r := applyResult{Name: v.Name, Txns: len(backlog)}
	q := pgx.Identifier{db}.Sanitize()
	if err := execSQL(ctx, inst, "postgres", "DROP DATABASE IF EXISTS "+q, "CREATE DATABASE "+q+" TEMPLATE "+pgx.Identifier{base}.Sanitize(), "CHECKPOINT"); err != nil {
		return r, err
	}
	conn, done, err := connectVia(ctx, inst, db, v.delay)
	if err != nil {
		return r, err
	}
	defer done()
	origin := "bench_" + db
	if err := apply.PrepareSession(ctx, conn); err != nil {
		return r, err
	}
	if err := apply.EnsureOrigin(ctx, conn, origin); err != nil {
		return r, err
	}
	defer execSQL(context.WithoutCancel(ctx), inst, "postgres", fmt.Sprintf(`SELECT pg_replication_origin_drop('%s')`, origin))
	cpu := startCPU(inst, inst)
	self0 := selfCPU()
	start := time.Now()
	if err := v.run(ctx, conn, origin, backlog); err != nil {
		return r, err
	}
	r.Elapsed = time.Since(start)
	r.ClientCPU = selfCPU() - self0
	r.TargetCPU = cpu.stop().Target
	return r, checkBacklogApplied(ctx, conn, backlog)
}

// connectVia connects to db on inst, through a delayProxy when delay is
// set; done closes the connection and the proxy.
func connectVia(ctx context.Context, inst *instance.Instance, db string, delay time.Duration) (conn *pgx.Conn, done func(), err error) {
	if delay == 0 {
		if conn, err = connect(ctx, inst, db); err != nil {
			return nil, nil, err
		}
		return conn, func() { conn.Close(context.Background()) }, nil
	}
	cfg, err := pgx.ParseConfig(inst.URL(db))
	if err != nil {
		return nil, nil, err
	}
	p, err := startDelayProxy(fmt.Sprintf("127.0.0.1:%d", inst.Port), delay)
	if err != nil {
		return nil, nil, err
	}
	cfg.Host, cfg.Port = "127.0.0.1", uint16(p.port())
	if conn, err = pgx.ConnectConfig(ctx, cfg); err != nil {
		p.close()
		return nil, nil, fmt.Errorf("connect to %s through a delay proxy: %w", db, err)
	}
	return conn, func() { conn.Close(context.Background()); p.close() }, nil
}

// checkBacklogApplied compares the database with the backlog's effect.
func checkBacklogApplied(ctx context.Context, conn *pgx.Conn, backlog []pgbenchTxn) error {
	var wantA, wantT, wantB, wantDelta int64
	lastA, lastT, lastB := map[int]int64{}, map[int]int64{}, map[int]int64{}
	for _, t := range backlog {
		lastA[t.aid], lastT[t.tid], lastB[t.bid] = t.abal, t.tbal, t.bbal
		wantDelta += int64(t.delta)
	}
	for _, v := range lastA {
		wantA += v
	}
	for _, v := range lastT {
		wantT += v
	}
	for _, v := range lastB {
		wantB += v
	}
	var a, t, b, d, n int64
	err := conn.QueryRow(ctx, `SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers),
		(SELECT sum(bbalance) FROM pgbench_branches), (SELECT coalesce(sum(delta), 0) FROM pgbench_history),
		(SELECT count(*) FROM pgbench_history)`).Scan(&a, &t, &b, &d, &n)
	if err != nil {
		return err
	}
	if a != wantA || t != wantT || b != wantB || d != wantDelta || n != int64(len(backlog)) {
		return fmt.Errorf("after the backlog: balances %d/%d/%d, history %d rows summing %d; want %d/%d/%d, %d rows summing %d",
			a, t, b, n, d, wantA, wantT, wantB, len(backlog), wantDelta)
	}
	return nil
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// applyVariants are the ways figure 2b compares.
func applyVariants() []applyVariant {
	return []applyVariant{
		{Name: "pglink apply as built (1000 source txns per target txn, two sessions)", run: pglinkApply(apply.Options{})},
		{Name: "pglink apply on one session", run: pglinkApplyOn(1, apply.Options{})},
		{Name: "pglink apply, row by row (set-based apply off)", run: pglinkApply(apply.Options{RowByRow: true})},
		{Name: "pglink apply, enable_seqscan on", run: pglinkApply(apply.Options{}, "SET enable_seqscan = on")},
		{Name: "pglink apply, enable_seqscan off", run: pglinkApply(apply.Options{}, "SET enable_seqscan = off")},
		{Name: "pglink apply, 100 source txns per target txn", run: pglinkApply(apply.Options{MaxBatchTxns: 100})},
		{Name: "pglink apply on one session, one batch in flight", run: pglinkApplyOn(1, apply.Options{MaxInflight: 1})},
		{Name: "pglink apply, the target 1 ms away (each way)", run: pglinkApply(apply.Options{}), delay: time.Millisecond},
		{Name: "pglink apply on one session, the target 1 ms away", run: pglinkApplyOn(1, apply.Options{}), delay: time.Millisecond},
		{Name: "pglink apply on one session, one batch in flight, the target 1 ms away", run: pglinkApplyOn(1, apply.Options{MaxInflight: 1}), delay: time.Millisecond},
		{Name: "pglink apply, 100 source txns per target txn, the target 1 ms away", run: pglinkApply(apply.Options{MaxBatchTxns: 100}), delay: time.Millisecond},
		{Name: "pglink apply, 100 per target txn, one session, one batch in flight, the target 1 ms away", run: pglinkApplyOn(1, apply.Options{MaxBatchTxns: 100, MaxInflight: 1}), delay: time.Millisecond},
	}
}
