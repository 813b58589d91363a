package main

import (
	"runtime/debug"
)

// pglink's heap is mostly short-lived: a change is decoded, folded into a
// batch and sent, and the batch is dropped once the target has it, so
// Go's default (GOGC=100) collects far more often than the heap needs.
// Collecting less often costs memory that pglink does not otherwise use:
//
//   - gcPercent 400: less CPU per source transaction, for a higher peak
//     heap (the bench's catch-up and memory figures measure both);
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
