package assess

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/quote"
)

// relRight is what the user may do with one relation.
type relRight struct {
	Key     string // schema.name
	Quoted  string
	Select  bool
	Owns    bool // the user has the owner's rights (is the owner, a member of it, or superuser)
	Owner   string
	OwnerSU bool // the owner is a superuser
	IsTable bool // a table the publication names (not a partition below one)
}

// tableRights checks that the user can read every table and partition the
// seeding copies (a partition is read directly, so its own grants count),
// and can create the publication: CREATE PUBLICATION ... FOR TABLE needs
// the owner's rights on each table it names.
func tableRights(ctx context.Context, conn *pgx.Conn, tables []catalog.Table, s sourceSettings) ([]Finding, error) {
	rights, err := readRights(ctx, conn, tables)
	if err != nil {
		return nil, err
	}
	var noSelect, grants, notOwned, owners, superOwners []string
	for _, r := range rights {
		if !r.Select {
			noSelect = append(noSelect, r.Key)
			grants = append(grants, fmt.Sprintf("GRANT SELECT ON %s TO %s;", r.Quoted, quote.Ident(s.User)))
		}
		if r.IsTable && !r.Owns {
			notOwned = append(notOwned, r.Key)
			switch {
			case r.OwnerSU && !slices.Contains(superOwners, r.Owner):
				superOwners = append(superOwners, r.Owner)
			case !r.OwnerSU && !slices.Contains(owners, r.Owner):
				owners = append(owners, r.Owner)
			}
		}
	}
	var fs []Finding
	if len(noSelect) > 0 {
		fs = append(fs, finding(Blocker, endpoint.Source, "select_right", "the user cannot read "+list(noSelect),
			"GRANT SELECT ON those tables TO "+quote.Ident(s.User)+"; or leave them out with --exclude-tables", grants...))
	}
	if len(notOwned) > 0 && !s.Superuser {
		fs = append(fs, ownerFinding(s.User, notOwned, owners, superOwners))
	}
	return fs, nil
}

// ownerFinding says how the user gets the owner's rights: membership in
// an owning role, except for a superuser role (membership would make the
// user one).
func ownerFinding(user string, notOwned, owners, superOwners []string) Finding {
	var sql []string
	for _, o := range owners {
		sql = append(sql, fmt.Sprintf("GRANT %s TO %s;", quote.Ident(o), quote.Ident(user)))
	}
	fix := "link as a superuser or as the tables' owner"
	if len(sql) > 0 {
		fix += ", or make the user a member of the owning role: " + strings.Join(sql, " ")
	}
	if len(superOwners) > 0 {
		fix += "; tables owned by the superuser " + strings.Join(superOwners, ", ") +
			" need a superuser to link them (or ALTER TABLE ... OWNER TO an ordinary role)"
	}
	return finding(Blocker, endpoint.Source, "owner_right",
		"the publication can only be created by the tables' owner or a superuser, and the user does not own "+list(notOwned),
		fix, sql...)
}

func readRights(ctx context.Context, conn *pgx.Conn, tables []catalog.Table) ([]relRight, error) {
	var schemas, names []string
	var isTable []bool
	for _, t := range tables {
		schemas, names, isTable = append(schemas, t.Schema), append(names, t.Name), append(isTable, true)
		for _, p := range t.Partitions {
			schemas, names, isTable = append(schemas, p.Schema), append(names, p.Name), append(isTable, false)
		}
	}
	if len(schemas) == 0 {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `
		SELECT r.s || '.' || r.n, format('%I.%I', r.s, r.n), r.t,
		       has_table_privilege(c.oid, 'SELECT'), pg_has_role(c.relowner, 'USAGE'), o.rolname, o.rolsuper
		FROM unnest($1::text[], $2::text[], $3::bool[]) AS r(s, n, t)
		JOIN pg_class c ON c.oid = to_regclass(format('%I.%I', r.s, r.n))
		JOIN pg_roles o ON o.oid = c.relowner`, schemas, names, isTable)
	if err != nil {
		return nil, fmt.Errorf("source: check the user's rights on the tables: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (relRight, error) {
		var r relRight
		err := row.Scan(&r.Key, &r.Quoted, &r.IsTable, &r.Select, &r.Owns, &r.Owner, &r.OwnerSU)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("source: check the user's rights on the tables: %w", err)
	}
	return out, nil
}

// redact returns err's message without the password, should a server or a
// driver ever echo it.
func redact(err error, password string) string {
	msg := err.Error()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg = pgErr.Message
	}
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "****")
	}
	return msg
}
