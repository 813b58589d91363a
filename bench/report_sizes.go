package main

import (
	"fmt"
	"time"
)

// The seeding and catch-up figures are measured at several sizes; their
// reports give each size's medians and ratios, then a summary per size.

func (r *results) renderSeeding(p printer) {
	p("## 1. Seeding\n\n")
	if len(r.Seeding) == 0 {
		p("Not measured. %s\n\n", r.SeedNote)
		return
	}
	p("From the start of the command until the target is ready: for pglink until the link's phase is `replicating`\n")
	p("(process start, checks, slot, schema, data, indexes and constraints, streaming). pgcopydb runs twice: with its\n")
	p("defaults, as its users run it (no table is split), and splitting tables at pglink's split size; the ratio is\n")
	p("against the faster of the two in each run.\n\n")
	skipped := r.Seeding[0].Runs[0].PgcopydbSkipped
	p("| scale | size | pglink | pgcopydb, defaults | pgcopydb, split | pg_dump + pg_restore | pglink / best pgcopydb | target |\n")
	p("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, z := range r.Seeding {
		pgl := collect(z.Runs, func(s seedRun) float64 { return secs(s.Pglink) })
		dump := collect(z.Runs, func(s seedRun) float64 { return secs(s.DumpRestore()) })
		if skipped {
			p("| %d | %s | %.1f s | - | - | %.1f s | - | - |\n", z.Scale, z.DBSize, pgl.median(), dump.median())
			continue
		}
		pgc := collect(z.Runs, func(s seedRun) float64 { return secs(s.Pgcopydb) })
		split := collect(z.Runs, func(s seedRun) float64 { return secs(s.PgcopydbSplit) })
		ratio := collect(z.Runs, func(s seedRun) float64 { return s.Pglink.Seconds() / s.PgcopydbBest().Seconds() })
		p("| %d | %s | %.1f s (%s) | %.1f s (%s) | %.1f s (%s) | %.1f s | **%.2fx** (%s) | %s |\n", z.Scale, z.DBSize,
			pgl.median(), pgl.list("%.1f"), pgc.median(), pgc.list("%.1f"), split.median(), split.list("%.1f"), dump.median(),
			ratio.median(), ratio.list("%.2f"), seedTarget(z.Scale, ratio.median()))
	}
	p("\nTargets: at most 0.8x pgcopydb at every scale from 20 up, at most 0.7x from 200 up (none below 20).\n\n")
	for _, z := range r.Seeding {
		renderSeedSize(p, z, skipped)
	}
	if r.SeedNote != "" {
		p("%s\n\n", r.SeedNote)
	}
}

func seedTarget(scale int, ratio float64) string {
	switch {
	case scale >= 200:
		return verdict(ratio <= 0.7)
	case scale >= 20:
		return verdict(ratio <= 0.8)
	}
	return "-"
}

// renderSeedSize gives one scale's CPU and pglink's steps.
func renderSeedSize(p printer, z seedSize, skipped bool) {
	p("### Scale %d (%s)\n\n", z.Scale, z.DBSize)
	p("| tool | CPU s (source / target / client), median |\n| --- | --- |\n")
	cpu := func(f func(seedRun) cpuUse) string {
		return fmt.Sprintf("%.1f / %.1f / %.1f",
			collect(z.Runs, func(s seedRun) float64 { return secs(f(s).Source) }).median(),
			collect(z.Runs, func(s seedRun) float64 { return secs(f(s).Target) }).median(),
			collect(z.Runs, func(s seedRun) float64 { return secs(f(s).Client) }).median())
	}
	p("| `pglink start` | %s |\n", cpu(func(s seedRun) cpuUse { return s.PglinkCPU }))
	if !skipped {
		p("| `pgcopydb clone` | %s |\n", cpu(func(s seedRun) cpuUse { return s.PgcopydbCPU }))
		p("| `pgcopydb clone --split-tables-larger-than` | %s |\n", cpu(func(s seedRun) cpuUse { return s.PgcopydbSplitCPU }))
	}
	p("| `pg_dump -Fd -j N` + `pg_restore -j N` | %s |\n\n", cpu(func(s seedRun) cpuUse { return s.DumpCPU }))
	st := func(f func(seedSteps) time.Duration) float64 {
		return collect(z.Runs, func(s seedRun) float64 { return secs(f(s.PglinkSteps)) }).median()
	}
	p("pglink's steps (median): start and checks %.2f s, schema (pre-data) %.2f s, copy %.1f s, indexes and constraints (post-data) %.1f s.\n",
		st(func(s seedSteps) time.Duration { return s.Start }), st(func(s seedSteps) time.Duration { return s.Schema }),
		st(func(s seedSteps) time.Duration { return s.Copy }), st(func(s seedSteps) time.Duration { return s.Post }))
	dumps := collect(z.Runs, func(s seedRun) float64 { return secs(s.Dump) })
	p("pg_dump alone (median): %.1f s.\n\n", dumps.median())
}

func (r *results) renderCatchup(p printer) {
	p("## 2. Catch-up\n\n")
	if len(r.Catchup) == 0 {
		p("Not measured. %s\n\n", r.CatchupNote)
		return
	}
	p("With the link stopped and the native subscription disabled at the same marker, pgbench writes a backlog;\n")
	p("then each alone applies it up to one final marker (the same source position): pglink from the start of its\n")
	p("process, the subscription from ALTER SUBSCRIPTION ENABLE, until the target holds the marker. Both copies are\n")
	p("vacuumed once after the initial copy, and both servers checkpoint before each catch-up.\n\n")
	p("| backlog | transactions | pglink | native | pglink / native, txn/s | target |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, z := range r.Catchup {
		txns := collect(z.Runs, func(b backlogRun) float64 { return float64(b.Txns) })
		pt := collect(z.Runs, func(b backlogRun) float64 { return secs(b.Pglink) })
		nt := collect(z.Runs, func(b backlogRun) float64 { return secs(b.Native) })
		ratio := collect(z.Runs, func(b backlogRun) float64 { return b.Native.Seconds() / b.Pglink.Seconds() })
		p("| %s | %.0f | %.2f s (%s) | %.2f s (%s) | **%.2fx** (%s) | %s |\n", z.For, txns.median(), pt.median(), pt.list("%.2f"),
			nt.median(), nt.list("%.2f"), ratio.median(), ratio.list("%.2f"), verdict(ratio.median() >= 1.5))
	}
	p("\nTarget: at least 1.5x native at every backlog (see bench/README.md for the bound on 2 cores).\n\n")
	for _, z := range r.Catchup {
		renderBacklogSize(p, z)
	}
	if r.Replicas != nil {
		p("Setup (one measurement each, informational): pglink seeded the target in %.1f s; the native subscription's initial\n", secs(r.Replicas.PglinkSeed))
		p("sync (copy_data, into tables created with their indexes by pg_dump --schema-only) took %.1f s.\n\n", secs(r.Replicas.NativeSync))
	}
	if r.CatchupNote != "" {
		p("%s\n\n", r.CatchupNote)
	}
}

// renderBacklogSize gives one backlog's rates, CPU and restart points.
func renderBacklogSize(p printer, z backlogSize) {
	p("### Backlog of %s\n\n", z.For)
	wrote := collect(z.Runs, func(b backlogRun) float64 { return secs(b.Written.Elapsed) })
	srcTPS := collect(z.Runs, func(b backlogRun) float64 { return b.Written.TPS })
	ptps := collect(z.Runs, func(b backlogRun) float64 { return b.PglinkTPS() })
	ntps := collect(z.Runs, func(b backlogRun) float64 { return b.NativeTPS() })
	p("Written by pgbench in %s s (%.0f txn/s on the source).\n\n", wrote.list("%.0f"), srcTPS.median())
	p("| | txn/s, median | CPU s (source / target / pglink), median |\n| --- | --- | --- |\n")
	cpu := func(f func(backlogRun) cpuUse) string {
		return fmt.Sprintf("%.1f / %.1f / %.1f",
			collect(z.Runs, func(b backlogRun) float64 { return secs(f(b).Source) }).median(),
			collect(z.Runs, func(b backlogRun) float64 { return secs(f(b).Target) }).median(),
			collect(z.Runs, func(b backlogRun) float64 { return secs(f(b).Client) }).median())
	}
	p("| pglink | %.0f | %s |\n", ptps.median(), cpu(func(b backlogRun) cpuUse { return b.PglinkCPU }))
	p("| native subscription | %.0f | %s |\n\n", ntps.median(), cpu(func(b backlogRun) cpuUse { return b.NativeCPU }))
	plag := collect(z.Runs, func(b backlogRun) float64 { return mb(b.PglinkRestartLag) })
	nlag := collect(z.Runs, func(b backlogRun) float64 { return mb(b.NativeRestartLag) })
	p("Each slot's restart point behind its confirmed position at the start, in MB (the WAL sender decodes that again\n")
	p("before it sends anything): pglink %s; native %s.\n\n", plag.list("%.0f"), nlag.list("%.0f"))
}

func (r *results) renderValidate(p printer) {
	p("## 6. Validation\n\n")
	if len(r.Seeding) == 0 {
		p("Not measured. %s\n\n", r.SeedNote)
		return
	}
	p("`pglink validate` on the whole database, right after the seeding, while the link runs.\n\n")
	p("| scale | validate | validate / seeding | target |\n| --- | --- | --- | --- |\n")
	for _, z := range r.Seeding {
		v := collect(z.Runs, func(s seedRun) float64 { return secs(s.Validate) })
		ratio := collect(z.Runs, func(s seedRun) float64 { return s.Validate.Seconds() / s.Pglink.Seconds() })
		p("| %d | %.1f s (%s) | **%.2fx** (%s) | %s |\n", z.Scale, v.median(), v.list("%.1f"), ratio.median(), ratio.list("%.2f"), verdict(ratio.median() <= 1))
	}
	p("\nTarget: no slower than seeding.\n\n")
}
