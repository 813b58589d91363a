package stream

import (
	"github.com/pglink/pglink/internal/change"
)

// testRelation is a one-column relation for hand-built messages.
func testRelation(id uint32) *change.Relation {
	return &change.Relation{ID: id, Schema: "public", Name: "t", ReplicaIdentity: change.IdentityDefault,
		Columns: []change.Column{{Name: "v", TypeOID: 25, TypeMod: -1}}}
}
