package seed

import "testing"

func TestPartCountBalancesJobs(t *testing.T) {
	const mb = 1 << 20
	tests := []struct {
		size, split int64
		jobs, want  int
	}{
		{640 * mb, 256 * mb, 2, 4}, // 3 parts would leave one job idle for the last
		{640 * mb, 256 * mb, 3, 3},
		{640 * mb, 256 * mb, 1, 3},
		{100 * mb, 256 * mb, 4, 1}, // small enough: one part, whatever the jobs
		{1000, 300, 4, 4},
		{1000, 300, 3, 6},
		{1 << 60, 1, 3, 10000}, // the cap still holds
	}
	for _, tt := range tests {
		if got := partCount(tt.size, tt.split, tt.jobs); got != tt.want {
			t.Errorf("partCount(%d, %d, %d jobs) = %d, want %d", tt.size, tt.split, tt.jobs, got, tt.want)
		}
	}
}
