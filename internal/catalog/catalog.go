// Package catalog reads what a PostgreSQL database holds that a link cares
// about: the tables it replicates with their columns, keys, replica identity
// and sizes, and the sequences a failover carries over. It reads the system
// catalogs only (no information_schema), with queries valid on PostgreSQL
// 13 to 18.
package catalog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/quote"
)

// OwnSchema is pglink's schema in the databases it links; its tables are
// pglink's state, never user data.
const OwnSchema = "pglink"

// Column is one live column of a table.
type Column struct {
	Name      string
	Type      string // format_type(atttypid, atttypmod) under FixedSearchPath, e.g. "character varying(20)", "abc.state"
	TypeOID   uint32
	Generated bool // GENERATED ALWAYS AS (...) STORED: never copied nor replicated, the target computes it
	NotNull   bool
	// BinaryPortable is true when the binary COPY form of this column's type
	// can be read by another server. It is false where PostgreSQL writes
	// type OIDs into the binary form (arrays, composites) of types whose OIDs
	// differ between databases (user-defined or extension types), and for
	// types without binary send/receive functions.
	BinaryPortable bool
}

// Partition is one table below a partition root.
type Partition struct {
	Schema, Name    string
	Leaf            bool  // holds rows (relkind 'r'); false for a sub-partitioned table
	ReplicaIdentity byte  // its own relreplident: ALTER TABLE root REPLICA IDENTITY does not reach partitions
	HasIdentity     bool  // UPDATE and DELETE can be published (a key, or identity full)
	SizeBytes       int64 // pg_total_relation_size
	EstRows         int64 // reltuples; -1 (or 0 before PostgreSQL 14) when never analyzed
}

// Key returns "schema.name" unquoted.
func (p Partition) Key() string { return p.Schema + "." + p.Name }

// QualifiedName returns schema.name quoted for SQL.
func (p Partition) QualifiedName() string {
	return quote.Ident(p.Schema) + "." + quote.Ident(p.Name)
}

// Table is a table a link replicates: an ordinary table or a partition root.
type Table struct {
	Schema, Name    string
	OID             uint32
	Partitioned     bool // relkind 'p': a partition root; its rows live in Partitions
	Unlogged        bool // not in the WAL, so logical replication cannot carry it
	Columns         []Column
	PrimaryKey      []string // empty when none
	ReplicaIdentity byte     // pg_class.relreplident: 'd', 'n', 'f' or 'i' (change.Identity*)
	IdentityColumns []string // PK for 'd', the index columns for 'i', nil for 'f' and 'n'
	SizeBytes       int64    // pg_total_relation_size, summed over the partitions of a root
	EstRows         int64    // reltuples, summed over partitions; -1 (or 0) when never analyzed
	Partitions      []Partition
}

// QualifiedName returns schema.table quoted for SQL.
func (t Table) QualifiedName() string {
	return quote.Ident(t.Schema) + "." + quote.Ident(t.Name)
}

// Key returns "schema.table" unquoted: the name used in pglink's state
// tables and in messages.
func (t Table) Key() string { return t.Schema + "." + t.Name }

// CopyColumns returns the columns a copy or an apply writes: all but the
// generated ones, which the target computes itself (and refuses as input).
func (t Table) CopyColumns() []Column {
	var cols []Column
	for _, c := range t.Columns {
		if !c.Generated {
			cols = append(cols, c)
		}
	}
	return cols
}

// Leaves returns the partitions that hold rows.
func (t Table) Leaves() []Partition {
	var out []Partition
	for _, p := range t.Partitions {
		if p.Leaf {
			out = append(out, p)
		}
	}
	return out
}

// hasIdentity tells whether PostgreSQL can publish UPDATE and DELETE of a
// relation: CheckCmdReplicaIdentity refuses them for identity nothing, and
// for identity default without a primary key.
func hasIdentity(ident byte, hasPK bool) bool {
	switch ident {
	case change.IdentityFull, change.IdentityIndex:
		return true
	case change.IdentityDefault:
		return hasPK
	}
	return false
}

// NoIdentity returns the tables whose UPDATE and DELETE cannot be
// replicated: no primary key with replica identity default, or identity
// nothing. A partition root is listed when it or any of its partitions
// lacks an identity, since PostgreSQL checks the partition a row is in.
// IdentityFix says how to repair each one.
func NoIdentity(ts []Table) []Table {
	var out []Table
	for _, t := range ts {
		ok := hasIdentity(t.ReplicaIdentity, len(t.PrimaryKey) > 0)
		for _, p := range t.Partitions {
			if p.Leaf && !p.HasIdentity {
				ok = false
			}
		}
		if !ok {
			out = append(out, t)
		}
	}
	return out
}

// IdentityFix returns the statements that give t (and each partition that
// needs it) REPLICA IDENTITY FULL. Adding a primary key is the better fix
// when the table has a unique key: identity full makes the target search
// rows by all their columns.
func IdentityFix(t Table) []string {
	var out []string
	if !hasIdentity(t.ReplicaIdentity, len(t.PrimaryKey) > 0) {
		out = append(out, fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL;", t.QualifiedName()))
	}
	for _, p := range t.Partitions {
		if p.Leaf && !p.HasIdentity {
			out = append(out, fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL;", p.QualifiedName()))
		}
	}
	return out
}

// ServerVersion returns server_version_num, e.g. 150018.
func ServerVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var v int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v); err != nil {
		return 0, fmt.Errorf("read server version: %w", err)
	}
	return v, nil
}
