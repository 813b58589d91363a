package stream

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
)

var errShort = errors.New("message shorter than its contents")

// checkLengths verifies that the relation count of a Truncate message,
// from which pglogrepl's decoding allocates, fits in the message, so a
// damaged spool record fails cleanly instead of asking for gigabytes. Row
// messages never reach pglogrepl (rowMessage decodes them, with its own
// bounds checks); other message types pass unchecked.
func checkLengths(data []byte, inStream bool) error {
	if pglogrepl.MessageType(data[0]) != pglogrepl.MessageTypeTruncate {
		return nil
	}
	b := data[1:]
	if inStream {
		if len(b) < 4 {
			return errShort
		}
		b = b[4:] // xid of the (sub)transaction
	}
	if len(b) < 5 {
		return errShort
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(len(b)-5) != 4*uint64(n) {
		return fmt.Errorf("truncate of %d relations in %d bytes", n, len(b)-5)
	}
	return nil
}
