package assess

import (
	"fmt"
	"math"

	"github.com/pglink/pglink/internal/endpoint"
)

// DefaultCopyRate is the copy throughput an estimate assumes when the user
// gives none, in bytes per second for the whole seeding (all jobs together,
// index builds included). It is an assumption, not a measurement, and a
// cautious one: the copy is bound by the target's disk and CPU, and by
// the one job that copies the largest table; a trial link of the largest
// table gives the real figure.
const DefaultCopyRate = 50 << 20

// SizingInput is what an estimate starts from.
type SizingInput struct {
	CopyBytes     int64   // the tables to copy, with indexes and TOAST
	Sample        Sample  // the source's write rate
	CopyRate      float64 // assumed copy throughput, bytes per second
	Jobs          int     // parallel copy jobs
	SharedBuffers int64   // the source's shared_buffers
}

// Estimate is the seeding time, the WAL the slot holds meanwhile and a
// suggested size for the target, each with its reasoning.
type Estimate struct {
	CopyBytes              int64    `json:"copy_bytes"`
	AssumedCopyBytesPerSec float64  `json:"assumed_copy_bytes_per_sec"`
	SeedSeconds            float64  `json:"seed_seconds"`
	WALDuringSeedBytes     int64    `json:"wal_during_seed_bytes"`
	TargetStorageBytes     int64    `json:"target_storage_bytes"`
	TargetMemoryBytes      int64    `json:"target_memory_bytes"`
	TargetCores            int      `json:"target_cores"`
	Reasoning              []string `json:"reasoning"`
}

const gib = 1 << 30

// EstimateFrom computes the estimate. The rules are simple on purpose, and
// each is written into Reasoning so the user can redo it with better
// numbers.
func EstimateFrom(in SizingInput) Estimate {
	if in.CopyRate <= 0 {
		in.CopyRate = DefaultCopyRate
	}
	if in.Jobs <= 0 {
		in.Jobs = 4
	}
	e := Estimate{CopyBytes: in.CopyBytes, AssumedCopyBytesPerSec: in.CopyRate}
	e.SeedSeconds = float64(in.CopyBytes) / in.CopyRate
	e.WALDuringSeedBytes = int64(in.Sample.WALBytesPerSec * e.SeedSeconds)
	e.TargetStorageBytes = roundUp(int64(float64(in.CopyBytes)*1.5), gib)
	e.TargetMemoryBytes = roundUp(max(4*in.SharedBuffers, gib), gib)
	byLoad := int(math.Ceil(in.Sample.CommitsPerSec / 1000))
	e.TargetCores = max(2, in.Jobs, byLoad)
	e.Reasoning = []string{
		fmt.Sprintf("seeding: %s to copy and index (tables with their indexes and TOAST) at an assumed %s/s for all %d jobs together (an assumption, not a measurement: give your own with --copy-rate) takes %s",
			formatBytes(in.CopyBytes), formatBytes(int64(in.CopyRate)), in.Jobs, formatDuration(e.SeedSeconds)),
		fmt.Sprintf("WAL held by the slot: the source wrote %s/s of WAL while sampled; over the seeding the slot holds about %s, until the target has applied it",
			formatBytes(int64(in.Sample.WALBytesPerSec)), formatBytes(e.WALDuringSeedBytes)),
		fmt.Sprintf("target storage: the copy (%s) plus 50%% for the target's own WAL, temporary space of the index builds and growth while linked: %s",
			formatBytes(in.CopyBytes), formatBytes(e.TargetStorageBytes)),
		fmt.Sprintf("target memory: the source has shared_buffers = %s; with the common rule of a quarter of the memory for it, the source has about %s; give the target as much (at least 1 GiB): %s",
			formatBytes(in.SharedBuffers), formatBytes(4*in.SharedBuffers), formatBytes(e.TargetMemoryBytes)),
		fmt.Sprintf("target cores: one per copy job while seeding (%d), at least 2, and after the cutover a rule of thumb of one per 1,000 commits/s (the source committed %.0f/s while sampled): %d",
			in.Jobs, in.Sample.CommitsPerSec, e.TargetCores),
	}
	return e
}

// estimateFindings turns an estimate into findings where it meets a limit:
// max_slot_wal_keep_size, or the free disk of the source's WAL.
func estimateFindings(e Estimate, slotKeepMB int64, srcWALFree *int64) []Finding {
	var fs []Finding
	if slotKeepMB >= 0 && e.WALDuringSeedBytes > slotKeepMB<<20 {
		want := roundUp(2*e.WALDuringSeedBytes, gib) / gib
		sql := fmt.Sprintf("ALTER SYSTEM SET max_slot_wal_keep_size = '%dGB';", want)
		fs = append(fs, finding(Warning, endpoint.Source, "slot_invalidation",
			fmt.Sprintf("the slot will likely hold about %s of WAL while seeding, more than max_slot_wal_keep_size (%s): the slot would be invalidated and the link would have to start again",
				formatBytes(e.WALDuringSeedBytes), formatBytes(slotKeepMB<<20)),
			"raise the limit, then reload: "+sql+" SELECT pg_reload_conf();", sql, "SELECT pg_reload_conf();"))
	}
	if srcWALFree != nil && e.WALDuringSeedBytes > *srcWALFree {
		fs = append(fs, finding(Warning, endpoint.Source, "wal_disk",
			fmt.Sprintf("the slot will likely hold about %s of WAL while seeding, more than the %s free for the source's WAL: a full WAL disk stops the source server",
				formatBytes(e.WALDuringSeedBytes), formatBytes(*srcWALFree)),
			"free or add disk space for pg_wal, or seed when the source writes less"))
	}
	return fs
}

// diskFindings compares the copy with the target's free disk.
func diskFindings(copyBytes int64, tgtFree *int64) []Finding {
	if tgtFree == nil || copyBytes <= *tgtFree {
		return nil
	}
	return []Finding{finding(Warning, endpoint.Target, "target_disk",
		fmt.Sprintf("the tables to copy take %s on the source, and the target has %s free", formatBytes(copyBytes), formatBytes(*tgtFree)),
		"give the target more disk before the link (the copy drops the source's bloat, so it may need somewhat less)")}
}

func roundUp(n, unit int64) int64 { return (n + unit - 1) / unit * unit }

// formatBytes shows a size with binary units, as pg_size_pretty does.
func formatBytes(n int64) string {
	units := []string{"bytes", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for math.Abs(f) >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

func formatDuration(sec float64) string {
	switch {
	case sec < 1:
		return "under a second"
	case sec < 1.5:
		return "about a second"
	case sec < 120:
		return fmt.Sprintf("about %.0f seconds", sec)
	case sec < 2*3600:
		return fmt.Sprintf("about %.0f minutes", sec/60)
	}
	return fmt.Sprintf("about %.1f hours", sec/3600)
}
