package stream

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/pglink/pglink/internal/change"
)

// parseMessage decodes one pgoutput message. inStream says whether it came
// between StreamStart and StreamStop, where change messages carry the xid
// of their (sub)transaction first. pglogrepl indexes the buffer without
// bounds checks and sizes allocations from lengths in the message, so a
// malformed message is checked first, and any panic left is turned into an
// error.
func parseMessage(data []byte, inStream bool) (msg pglogrepl.Message, err error) {
	if len(data) == 0 {
		return nil, errors.New("empty pgoutput message")
	}
	if err := checkLengths(data, inStream); err != nil {
		return nil, fmt.Errorf("malformed pgoutput message of type %q (%d bytes): %w", data[0], len(data), err)
	}
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("malformed pgoutput message of type %q (%d bytes): %v", data[0], len(data), r)
		}
	}()
	msg, err = pglogrepl.ParseV2(data, inStream)
	if err != nil {
		return nil, fmt.Errorf("decode pgoutput message of type %q: %w", data[0], err)
	}
	return msg, nil
}

// relationCache maps pgoutput relation ids to what the last Relation
// message said. pgoutput announces a relation before the first change that
// uses it and again after its schema changes; a change always refers to the
// latest announcement.
type relationCache map[uint32]*change.Relation

// update stores a new *change.Relation for m. A Relation already handed out
// is never modified: the apply may still hold changes that point to it.
func (rc relationCache) update(m *pglogrepl.RelationMessage) {
	rel := &change.Relation{
		ID:              m.RelationID,
		Schema:          m.Namespace,
		Name:            m.RelationName,
		ReplicaIdentity: m.ReplicaIdentity,
		Columns:         make([]change.Column, len(m.Columns)),
	}
	for i, c := range m.Columns {
		rel.Columns[i] = change.Column{
			Name:    c.Name,
			TypeOID: c.DataType,
			TypeMod: c.TypeModifier,
			Key:     c.Flags&1 != 0, // flag 1: part of the replica identity
		}
	}
	rc[m.RelationID] = rel
}

func (rc relationCache) get(id uint32) (*change.Relation, error) {
	rel := rc[id]
	if rel == nil {
		return nil, fmt.Errorf("change for relation id %d that was never announced", id)
	}
	return rel, nil
}

// decode turns one message of a transaction's content - a row change,
// TRUNCATE or logical message, as sent inside a stream block when inStream
// - into a Change (CommitLSN and XID are the caller's to set). It returns
// nil for a non-transactional logical message, which belongs to no
// transaction.
func (rc relationCache) decode(data []byte, inStream bool) (*change.Change, error) {
	if len(data) == 0 {
		return nil, errors.New("empty pgoutput message")
	}
	if isRowChange(data[0]) {
		return rc.rowMessage(data, inStream)
	}
	msg, err := parseMessage(data, inStream)
	if err != nil {
		return nil, err
	}
	return rc.otherChange(msg)
}

// otherChange turns a pgoutput Truncate or logical Message into a Change
// (row changes are rowMessage's; CommitLSN and XID are the caller's to
// set). It returns nil for messages that carry nothing to apply:
// non-transactional logical messages, which are not part of any source
// transaction.
func (rc relationCache) otherChange(msg pglogrepl.Message) (*change.Change, error) {
	switch m := msg.(type) {
	case *pglogrepl.TruncateMessageV2:
		c := &change.Change{
			Kind:            change.Truncate,
			Cascade:         m.Option&pglogrepl.TruncateOptionCascade != 0,
			RestartIdentity: m.Option&pglogrepl.TruncateOptionRestartIdentity != 0,
		}
		for _, id := range m.RelationIDs {
			rel, err := rc.get(id)
			if err != nil {
				return nil, fmt.Errorf("truncate: %w", err)
			}
			c.Truncated = append(c.Truncated, rel)
		}
		return c, nil
	case *pglogrepl.LogicalDecodingMessageV2:
		if !m.Transactional {
			return nil, nil
		}
		// Content points into the receive buffer, which the next receive
		// overwrites.
		return &change.Change{Kind: change.Message, Prefix: m.Prefix, Content: bytes.Clone(m.Content), MessageLSN: m.LSN}, nil
	}
	return nil, fmt.Errorf("unexpected pgoutput message %s", msg.Type())
}
