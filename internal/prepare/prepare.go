// Package prepare applies to a source the fixes of pglink assess that are
// safe to apply: a role for the link with the rights it needs, replica
// identity FULL on tables without a key (when asked), and the settings
// logical replication needs (wal_level, replication slots, WAL senders;
// they take effect at the next restart). Each fix is a SQL statement the
// user sees before it runs. What is not safe to do unasked (rewriting an
// unlogged table, editing pg_hba.conf, restarting the server) is left as a
// note with its fix.
package prepare

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/assess"
	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
)

// Options say what to prepare.
type Options struct {
	Source   string // connection string of the source; the user needs the rights the fixes take (superuser, in practice)
	Database string // replaces the connection string's database when set
	// Role, when set, is created (or altered) as the link's role: LOGIN,
	// REPLICATION, and the rights on the database and tables a link needs.
	Role string
	// RolePassword is the role's password; empty leaves the password alone.
	// It is sent as a SCRAM secret and never shown.
	RolePassword          string
	ReplicaIdentityFull   bool     // set REPLICA IDENTITY FULL on tables without key
	Tables, ExcludeTables []string // the tables a link would carry, as pglink start takes them
}

// Step is one statement.
type Step struct {
	Why  string `json:"why"`
	SQL  string `json:"sql"`            // as shown: never holds a password
	Note string `json:"note,omitempty"` // what the user must do after it, e.g. restart
	exec string // as run, when it differs from SQL
}

func (s Step) statement() string {
	if s.exec != "" {
		return s.exec
	}
	return s.SQL
}

// Plan is what prepare does to one source database.
type Plan struct {
	Source string   `json:"source"` // user@host:port/db
	Steps  []Step   `json:"steps"`
	Notes  []string `json:"notes"` // what is left to the user, with the fix
}

// Connect opens a session to the source database of opts.
func Connect(ctx context.Context, opts Options) (*pgx.Conn, *endpoint.Endpoint, error) {
	ep, err := endpoint.Parse(endpoint.Source, opts.Source)
	if err != nil {
		return nil, nil, err
	}
	if opts.Database != "" {
		ep = ep.WithDatabase(opts.Database)
	}
	conn, err := ep.Connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	return conn, ep, nil
}

// Build decides the statements from what pglink assess finds on the source.
func Build(ctx context.Context, conn *pgx.Conn, opts Options) (Plan, error) {
	p := Plan{Steps: []Step{}, Notes: []string{}}
	tables, err := catalog.Tables(ctx, conn, catalog.Filter{Include: opts.Tables, Exclude: opts.ExcludeTables})
	if err != nil {
		return p, fmt.Errorf("source: list tables: %w", err)
	}
	fs, err := assess.CheckSource(ctx, conn, tables)
	if err != nil {
		return p, err
	}
	if opts.Role != "" {
		steps, notes, err := roleSteps(ctx, conn, opts, tables)
		if err != nil {
			return p, err
		}
		p.Steps, p.Notes = append(p.Steps, steps...), append(p.Notes, notes...)
	}
	var settings []Step
	for _, f := range fs {
		switch {
		case f.Check == "wal_level" || ((f.Check == "replication_slots" || f.Check == "wal_senders") && f.Severity != assess.Info):
			for _, sql := range f.SQL {
				settings = append(settings, Step{Why: f.What, SQL: sql,
					Note: "takes effect when the source server restarts: restart it before pglink start"})
			}
		case f.Check == "replica_identity" && opts.ReplicaIdentityFull:
			for _, sql := range f.SQL {
				p.Steps = append(p.Steps, Step{Why: "no primary key and no replica identity: UPDATE and DELETE would not replicate", SQL: sql})
			}
		case f.Check == "replica_identity":
			p.Notes = append(p.Notes, f.What+". Fix: add primary keys, or run pglink prepare again with --replica-identity-full")
		case f.Severity == assess.Blocker && !(opts.Role != "" && userRightsCheck[f.Check]):
			p.Notes = append(p.Notes, f.What+". Fix: "+f.Remedy)
		}
	}
	p.Steps = append(p.Steps, settings...)
	return p, nil
}

// userRightsCheck names the checks of the connecting user's rights, which
// do not matter when the link gets its own role.
var userRightsCheck = map[string]bool{"replication_right": true, "create_right": true, "select_right": true,
	"owner_right": true, "replication_connection": true}

// Apply runs the steps in order, each on its own (ALTER SYSTEM refuses to
// run in a transaction), calling before ahead of each. It stops at the
// first failure: the steps before it stay done, and running prepare again
// goes on from there, since every step can be repeated.
func (p Plan) Apply(ctx context.Context, conn *pgx.Conn, before func(Step)) error {
	for _, s := range p.Steps {
		if before != nil {
			before(s)
		}
		if _, err := conn.Exec(ctx, s.statement()); err != nil {
			return fmt.Errorf("source: %s failed: %w", s.SQL, err)
		}
	}
	return nil
}
