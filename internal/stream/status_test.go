package stream

import (
	"bytes"
	"testing"
	"time"
)

// TestStandbyStatusKeepsZeroFlush checks the wire form of a standby status,
// and that a zero flush position goes out as zero, not as the write
// position: the server would confirm, and so drop from the slot, what
// pglink has only received.
func TestStandbyStatusKeepsZeroFlush(t *testing.T) {
	at := pgEpoch.Add(3 * time.Second)
	got := standbyStatus(0x1D429B0, 0, 0, at, false)
	want := []byte{'r',
		0, 0, 0, 0, 0x01, 0xD4, 0x29, 0xB0, // write
		0, 0, 0, 0, 0, 0, 0, 0, // flush: nothing confirmed
		0, 0, 0, 0, 0, 0, 0, 0, // apply
		0, 0, 0, 0, 0, 0x2D, 0xC6, 0xC0, // 3,000,000 microseconds after 2000-01-01
		0, // no reply requested
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("standby status\n got % x\nwant % x", got, want)
	}
}
