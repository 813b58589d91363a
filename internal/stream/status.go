package stream

import (
	"encoding/binary"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pglink/pglink/internal/change"
)

// pgEpoch is the origin of the replication protocol's clock.
var pgEpoch = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// standbyStatus is the body of a Standby status update ('r'): the write,
// flush and apply positions, the client's clock (microseconds since
// pgEpoch) and whether the server is to answer at once (with a
// keepalive: proof that it still hears pglink). Each position goes out as given: a
// zero flush position tells the server that nothing is confirmed, and it
// leaves the slot where it is. (pglogrepl's SendStandbyStatusUpdate sends
// the write position in place of a zero flush position, which confirmed
// transactions pglink had received but not applied, in the first session
// of a new link.)
func standbyStatus(write, flush, apply change.LSN, now time.Time, replyRequested bool) []byte {
	b := make([]byte, 0, 34)
	b = append(b, 'r')
	b = binary.BigEndian.AppendUint64(b, uint64(write))
	b = binary.BigEndian.AppendUint64(b, uint64(flush))
	b = binary.BigEndian.AppendUint64(b, uint64(apply))
	b = binary.BigEndian.AppendUint64(b, uint64(now.Sub(pgEpoch).Microseconds()))
	if replyRequested {
		return append(b, 1)
	}
	return append(b, 0)
}

// sendStandbyStatus sends a Standby status update on the replication
// connection.
func sendStandbyStatus(conn *pgconn.PgConn, write, flush, apply change.LSN, replyRequested bool) error {
	msg, err := (&pgproto3.CopyData{Data: standbyStatus(write, flush, apply, time.Now(), replyRequested)}).Encode(nil)
	if err != nil {
		return err
	}
	return conn.Frontend().SendUnbufferedEncodedCopyData(msg)
}
