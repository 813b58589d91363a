package prepare

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/quote"
)

// roleSteps gives the link's role what a link needs on the source: LOGIN
// and REPLICATION, CONNECT and CREATE (for the publication) on the
// database, USAGE on the tables' schemas, SELECT on their tables and
// sequences, and the rights of the tables' owners, since only an owner (or
// a superuser) may put a table into a publication. Membership in a
// superuser role would make the role a superuser: tables a superuser owns
// are left as a note instead.
func roleSteps(ctx context.Context, conn *pgx.Conn, opts Options, tables []catalog.Table) ([]Step, []string, error) {
	role := quote.Ident(opts.Role)
	var db string
	var exists, super bool
	err := conn.QueryRow(ctx, `SELECT current_database(), r.rolname IS NOT NULL, COALESCE(r.rolsuper, false)
		FROM (SELECT 1) AS one LEFT JOIN pg_roles r ON r.rolname = $1`, opts.Role).Scan(&db, &exists, &super)
	if err != nil {
		return nil, nil, fmt.Errorf("source: look for role %s: %w", opts.Role, err)
	}
	first, notes, err := loginStep(opts, role, exists)
	if err != nil {
		return nil, nil, err
	}
	steps := []Step{first}
	if super {
		return steps, append(notes, hbaNote(opts.Role, db)), nil
	}
	why := "the link's role needs it"
	steps = append(steps,
		Step{Why: "to connect to the database", SQL: fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s;", quote.Ident(db), role)},
		Step{Why: "to create the link's publication", SQL: fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s;", quote.Ident(db), role)})
	var schemas []string
	for _, t := range tables {
		if !slices.Contains(schemas, t.Schema) {
			schemas = append(schemas, t.Schema)
		}
	}
	for _, s := range schemas {
		q := quote.Ident(s)
		steps = append(steps,
			Step{Why: why + " to reach the tables of schema " + s, SQL: fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s;", q, role)},
			Step{Why: "to copy the tables (and partitions) while seeding", SQL: fmt.Sprintf("GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s;", q, role)},
			Step{Why: "to read sequence positions at failover", SQL: fmt.Sprintf("GRANT SELECT ON ALL SEQUENCES IN SCHEMA %s TO %s;", q, role)})
	}
	owners, superOwners, err := tableOwners(ctx, conn, tables)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range owners {
		if o != opts.Role {
			steps = append(steps, Step{Why: "only a table's owner may publish it: the role gets the rights of owner " + o,
				SQL: fmt.Sprintf("GRANT %s TO %s;", quote.Ident(o), role)})
		}
	}
	if len(superOwners) > 0 {
		notes = append(notes, fmt.Sprintf("some tables belong to the superuser %s: only a superuser may publish them, and making %s a member of a superuser role would make it one. Fix: link them as a superuser, or give them an ordinary owner (ALTER TABLE ... OWNER TO ...)",
			strings.Join(superOwners, ", "), opts.Role))
	}
	return steps, append(notes, hbaNote(opts.Role, db)), nil
}

// loginStep creates the role or gives it LOGIN and REPLICATION, with the
// password as a SCRAM secret; the statement shown hides it.
func loginStep(opts Options, role string, exists bool) (Step, []string, error) {
	verb := "CREATE ROLE " + role + " LOGIN REPLICATION"
	why := "the link's role: LOGIN to connect, REPLICATION to stream changes"
	if exists {
		verb = "ALTER ROLE " + role + " WITH LOGIN REPLICATION"
	}
	s := Step{Why: why, SQL: verb + ";"}
	if opts.RolePassword == "" {
		note := fmt.Sprintf("role %s has no password from pglink: set one with \\password %s in psql, or run pglink prepare again with PGLINK_ROLE_PASSWORD set", opts.Role, role)
		if exists {
			note = fmt.Sprintf("the password of role %s is left as it was (set PGLINK_ROLE_PASSWORD to change it)", opts.Role)
		}
		return s, []string{note}, nil
	}
	secret, err := scramVerifier(opts.RolePassword)
	if err != nil {
		return s, nil, errors.New("PGLINK_ROLE_PASSWORD: " + err.Error())
	}
	s.SQL = verb + " PASSWORD '****';"
	s.exec = verb + " PASSWORD '" + secret + "';"
	s.Why += "; the password is sent as a SCRAM-SHA-256 secret, never in clear"
	return s, nil, nil
}

func hbaNote(role, db string) string {
	return fmt.Sprintf("pg_hba.conf must let role %s connect from where pglink runs, for the database and for replication, e.g.: host %s %s <address>/32 scram-sha-256 and host replication %s <address>/32 scram-sha-256; then SELECT pg_reload_conf(); (pglink assess checks it)",
		role, db, role, role)
}

// tableOwners lists the owners of tables, ordinary roles and superusers apart.
func tableOwners(ctx context.Context, conn *pgx.Conn, tables []catalog.Table) (owners, superOwners []string, err error) {
	oids := make([]uint32, len(tables))
	for i, t := range tables {
		oids[i] = t.OID
	}
	rows, err := conn.Query(ctx, `SELECT DISTINCT o.rolname, o.rolsuper FROM pg_class c JOIN pg_roles o ON o.oid = c.relowner
		WHERE c.oid = ANY($1::oid[]) ORDER BY 1`, oids)
	if err != nil {
		return nil, nil, fmt.Errorf("source: list the tables' owners: %w", err)
	}
	var name string
	var super bool
	_, err = pgx.ForEachRow(rows, []any{&name, &super}, func() error {
		if super {
			superOwners = append(superOwners, name)
		} else {
			owners = append(owners, name)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("source: list the tables' owners: %w", err)
	}
	return owners, superOwners, nil
}
