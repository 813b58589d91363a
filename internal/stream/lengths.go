package stream

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
)

var errShort = errors.New("message shorter than its contents")

// checkLengths verifies that the counts and lengths inside the pgoutput
// messages whose decoding allocates from them (Insert, Update, Delete,
// Truncate) fit in the message, so a damaged spool record fails cleanly
// instead of asking for gigabytes. Other message types pass unchecked.
func checkLengths(data []byte, inStream bool) error {
	if !isTxnContent(data[0]) {
		return nil
	}
	b := data[1:]
	if inStream {
		if len(b) < 4 {
			return errShort
		}
		b = b[4:] // xid of the (sub)transaction
	}
	switch pglogrepl.MessageType(data[0]) {
	case pglogrepl.MessageTypeInsert, pglogrepl.MessageTypeUpdate, pglogrepl.MessageTypeDelete:
		return checkRowMessage(b)
	case pglogrepl.MessageTypeTruncate:
		if len(b) < 5 {
			return errShort
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(len(b)-5) != 4*uint64(n) {
			return fmt.Errorf("truncate of %d relations in %d bytes", n, len(b)-5)
		}
	}
	return nil
}

// checkRowMessage checks relation id, then one or two tuples each after a
// one-byte tag ('K', 'O' or 'N').
func checkRowMessage(b []byte) error {
	if len(b) < 4 {
		return errShort
	}
	b = b[4:]
	for tuples := 0; len(b) > 0; tuples++ {
		if tuples == 2 {
			return errors.New("more than two tuples")
		}
		var err error
		if b, err = checkTuple(b[1:]); err != nil {
			return err
		}
	}
	return nil
}

// checkTuple checks one TupleData and returns what follows it.
func checkTuple(b []byte) ([]byte, error) {
	if len(b) < 2 {
		return nil, errShort
	}
	ncols := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	for i := 0; i < ncols; i++ {
		if len(b) < 1 {
			return nil, errShort
		}
		kind := b[0]
		b = b[1:]
		if kind != 't' && kind != 'b' {
			continue
		}
		if len(b) < 4 {
			return nil, errShort
		}
		n := uint64(binary.BigEndian.Uint32(b))
		if n > uint64(len(b)-4) {
			return nil, fmt.Errorf("value of %d bytes in %d", n, len(b)-4)
		}
		b = b[4+n:]
	}
	return b, nil
}
