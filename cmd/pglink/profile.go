package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// Profiling for pglink's benchmarks (bench/): when PGLINK_CPUPROFILE names
// a file, a CPU profile of the whole command is written there; when
// PGLINK_MEMPROFILE does, an allocation profile (all allocations since the
// start, and the heap in use) is written there when the command ends. Both
// are read with go tool pprof. Not a user-facing feature, so not a flag.
var stopProfiles = startProfiles()

func startProfiles() func() {
	cpuPath, memPath := os.Getenv("PGLINK_CPUPROFILE"), os.Getenv("PGLINK_MEMPROFILE")
	if cpuPath == "" && memPath == "" {
		return func() {}
	}
	var cpu *os.File
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "pglink: PGLINK_CPUPROFILE: %v\n", err)
		} else {
			cpu = f
		}
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if memPath != "" {
			writeHeapProfile(memPath)
		}
	}
}

func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pglink: PGLINK_MEMPROFILE: %v\n", err)
		return
	}
	defer f.Close()
	runtime.GC() // the heap in use as of the end, not of the last collection
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		fmt.Fprintf(os.Stderr, "pglink: PGLINK_MEMPROFILE: %v\n", err)
	}
}
