package main

import (
	"runtime/debug"
)

// pglink's heap is mostly short-lived: a change is decoded, folded into a
// batch and sent, and the batch is dropped once the target has it. With
// Go's default (GOGC=100) the collector took 12-16% of pglink's CPU in the
// benchmark's catch-up. Collecting less often costs memory that pglink
// does not otherwise use:
//
//   - gcPercent 400: pglink's CPU per source transaction in the catch-up
//     went from about 17 to 13 us; the peak RSS of a 2-million-row source
//     transaction from 57 to 96 MB (bench/README.md, figures 2 and 5).
//   - memoryLimit 256 MiB, a soft limit: should the live heap grow, the
//     collector runs more often rather than let the heap pass it.
//
// GOGC and GOMEMLIMIT in the environment still decide when they are set.
const (
	gcPercent   = 400
	memoryLimit = 256 << 20
)

// tuneGC applies pglink's collector settings where getenv has none.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
