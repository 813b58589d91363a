package catalog

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Identity names a database wherever it is reached from: the server's
// system identifier (set by initdb, kept by its physical copies) and the
// database's oid. Two connection strings that differ in every character
// (an address and a name of the same host, a proxy, a port forward) reach
// the same database exactly when their identities are equal.
type Identity struct {
	System uint64
	OID    uint32
	Name   string
}

// DatabaseIdentity reads the identity of conn's database.
func DatabaseIdentity(ctx context.Context, conn *pgx.Conn) (Identity, error) {
	var id Identity
	var system int64
	err := conn.QueryRow(ctx, `SELECT (SELECT system_identifier FROM pg_control_system()), oid, datname
		FROM pg_database WHERE datname = current_database()`).Scan(&system, &id.OID, &id.Name)
	if err != nil {
		return id, fmt.Errorf("read the database's identity (pg_control_system()): %w", err)
	}
	id.System = uint64(system)
	return id, nil
}

// Key is the identity as pglink records it.
func (id Identity) Key() string { return fmt.Sprintf("%d/%d", id.System, id.OID) }

// Matches tells whether key, recorded earlier, names this database. A key
// recorded by an older pglink ("name:oid") names no server: it matches on
// name and oid alone.
func (id Identity) Matches(key string) bool {
	if name, oid, legacy := strings.Cut(key, ":"); legacy && !strings.Contains(key, "/") {
		return name == id.Name && oid == fmt.Sprint(id.OID)
	}
	return key == id.Key()
}
