// Package change holds the small types where the stream and the apply meet:
// the stream decodes the source's pgoutput messages into Changes and sends
// them, in source commit order, on a channel; the apply reads them. Neither
// side knows the other.
package change

import (
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/pglink/pglink/internal/quote"
)

// LSN is a position in the source's write-ahead log.
type LSN = pglogrepl.LSN

// Kind says what a Change carries.
type Kind uint8

const (
	// Begin opens a source transaction. CommitLSN and CommitTime are set.
	Begin Kind = iota + 1
	// Commit closes it. CommitLSN, EndLSN and CommitTime are set; EndLSN is
	// the position recorded on the target as applied (the replication
	// origin's remote LSN), like native logical replication does.
	Commit
	// Insert carries New.
	Insert
	// Update carries New, and Old when the source sent the old key (the key
	// changed) or the whole old row (REPLICA IDENTITY FULL).
	Update
	// Delete carries Old: the key, or the whole row with REPLICA IDENTITY FULL.
	Delete
	// Truncate carries Truncated, Cascade and RestartIdentity.
	Truncate
	// Message is a transactional logical decoding message (pglink's
	// heartbeats travel this way). Prefix and Content are set.
	Message
)

func (k Kind) String() string {
	switch k {
	case Begin:
		return "BEGIN"
	case Commit:
		return "COMMIT"
	case Insert:
		return "INSERT"
	case Update:
		return "UPDATE"
	case Delete:
		return "DELETE"
	case Truncate:
		return "TRUNCATE"
	case Message:
		return "MESSAGE"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Replica identity settings as pgoutput sends them in a Relation message.
const (
	IdentityDefault byte = 'd' // primary key
	IdentityNothing byte = 'n'
	IdentityFull    byte = 'f'
	IdentityIndex   byte = 'i'
)

// Relation describes a source table as the stream last announced it.
// A Relation is never changed once sent; a new announcement makes a new one.
type Relation struct {
	ID              uint32
	Schema, Name    string
	ReplicaIdentity byte
	Columns         []Column
}

// QualifiedName returns schema.name, each part quoted for SQL.
func (r *Relation) QualifiedName() string {
	return quote.Ident(r.Schema) + "." + quote.Ident(r.Name)
}

// Column is one published column of a Relation.
type Column struct {
	Name    string
	TypeOID uint32
	TypeMod int32
	Key     bool // part of the replica identity
}

// Value kinds, as in pgoutput's TupleData.
const (
	ValueNull      byte = 'n'
	ValueUnchanged byte = 'u' // unchanged TOASTed value: not sent, keep what the target has
	ValueText      byte = 't'
	ValueBinary    byte = 'b'
)

// Value is one column of a Tuple. Data is the value in PostgreSQL's text
// output format (or binary when Kind is ValueBinary), untouched.
type Value struct {
	Kind byte
	Data []byte
}

// Tuple holds one Value per column of its Relation, in column order.
type Tuple []Value

// Change is one decoded item of the source's change stream.
type Change struct {
	Kind Kind
	XID  uint32

	CommitLSN  LSN // Begin, Commit and every row change: start of the commit record
	EndLSN     LSN // Commit: end of the commit record
	CommitTime time.Time

	Rel      *Relation // Insert, Update, Delete
	Old, New Tuple

	Truncated       []*Relation // Truncate
	Cascade         bool
	RestartIdentity bool

	Prefix     string // Message
	Content    []byte
	MessageLSN LSN // Message: where it is in the source's WAL
}
