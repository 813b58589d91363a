package assess

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/quote"
)

// Extension is an extension installed in the source database.
type Extension struct{ Name, Version string }

// Available is what the target server offers of one extension.
type Available struct {
	Versions  []string // versions CREATE EXTENSION can install (pg_available_extension_versions)
	Installed string   // version installed in the target database; "" when not installed
}

// extensionFindings compares the extensions of the source database with
// what the target offers. The schema copy runs CREATE EXTENSION on the
// target, which needs the extension's files on the target server: an
// extension the target does not offer blocks the schema copy.
func extensionFindings(src []Extension, tgt map[string]Available) []Finding {
	var missing, create, other []string
	var updates []string
	for _, e := range src {
		a, ok := tgt[e.Name]
		switch {
		case !ok:
			missing = append(missing, e.Name+" "+e.Version)
		case a.Installed != "" && a.Installed != e.Version:
			other = append(other, fmt.Sprintf("%s is at version %s on the target and %s on the source", e.Name, a.Installed, e.Version))
			if slices.Contains(a.Versions, e.Version) {
				updates = append(updates, fmt.Sprintf("ALTER EXTENSION %s UPDATE TO %s;", quote.Ident(e.Name), quote.Literal(e.Version)))
			}
		case a.Installed == "" && !slices.Contains(a.Versions, e.Version):
			other = append(other, fmt.Sprintf("%s: the target offers versions %s, not the source's %s", e.Name, strings.Join(a.Versions, ", "), e.Version))
		case a.Installed == "":
			create = append(create, e.Name)
		}
	}
	var fs []Finding
	if len(missing) > 0 {
		fs = append(fs, finding(Blocker, endpoint.Target, "extensions_missing",
			"extensions installed in the source database are not available on the target server (not in pg_available_extensions), so the schema copy cannot create them: "+list(missing),
			"install the packages that provide them on the target server (the same extension versions, built for its PostgreSQL version); the schema copy then runs CREATE EXTENSION"))
	}
	if len(other) > 0 {
		fs = append(fs, finding(Warning, endpoint.Target, "extension_versions",
			"extension versions differ: "+strings.Join(other, "; "),
			"install the source's version on the target, or bring both to one version with ALTER EXTENSION ... UPDATE TO", updates...))
	}
	if len(create) > 0 {
		fs = append(fs, finding(Info, endpoint.Target, "extensions",
			"the schema copy creates these extensions on the target, where they are available: "+list(create),
			"nothing to do (the target user needs the right to create them; most need a superuser)"))
	}
	return fs
}

// sourceExtensions lists the extensions of the source database but plpgsql,
// which every database has.
func sourceExtensions(ctx context.Context, conn *pgx.Conn) ([]Extension, error) {
	rows, err := conn.Query(ctx, `SELECT extname, extversion FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("source: list extensions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Extension, error) {
		var e Extension
		return e, r.Scan(&e.Name, &e.Version)
	})
	if err != nil {
		return nil, fmt.Errorf("source: list extensions: %w", err)
	}
	return out, nil
}

// targetExtensions lists what the target server offers; installed tells
// whether conn's database is the target database (else nothing counts as
// installed).
func targetExtensions(ctx context.Context, conn *pgx.Conn, installed bool) (map[string]Available, error) {
	rows, err := conn.Query(ctx, `SELECT name, version, installed FROM pg_available_extension_versions ORDER BY name, version`)
	if err != nil {
		return nil, fmt.Errorf("target: list available extensions: %w", err)
	}
	out := map[string]Available{}
	var name, version string
	var inst bool
	_, err = pgx.ForEachRow(rows, []any{&name, &version, &inst}, func() error {
		a := out[name]
		a.Versions = append(a.Versions, version)
		if inst && installed {
			a.Installed = version
		}
		out[name] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("target: list available extensions: %w", err)
	}
	return out, nil
}

// ownersAndGrantees lists the roles that own the user's schemas, tables,
// sequences, views, functions and types in the source database, or are
// granted rights on them (default privileges included): the roles pg_dump's
// schema names in OWNER TO and GRANT statements.
const ownersAndGrantees = `
WITH objs(owner, acl) AS (
  SELECT c.relowner, c.relacl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND ` + userObjects + `
  UNION ALL
  SELECT n.nspowner, n.nspacl FROM pg_namespace n
   WHERE n.nspname !~ '^pg_' AND n.nspname NOT IN ('information_schema', '` + catalog.OwnSchema + `')
  UNION ALL
  SELECT p.proowner, p.proacl FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname !~ '^pg_' AND n.nspname NOT IN ('information_schema', '` + catalog.OwnSchema + `')
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
  UNION ALL
  SELECT t.typowner, t.typacl FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
   WHERE n.nspname !~ '^pg_' AND n.nspname NOT IN ('information_schema', '` + catalog.OwnSchema + `')
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
  UNION ALL
  SELECT a.defaclrole, a.defaclacl FROM pg_default_acl a
)
SELECT DISTINCT r.rolname FROM (
  SELECT owner FROM objs
  UNION SELECT (aclexplode(acl)).grantee FROM objs WHERE acl IS NOT NULL
) x(oid) JOIN pg_roles r ON r.oid = x.oid
ORDER BY 1`

func sourceRoles(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, ownersAndGrantees)
	if err != nil {
		return nil, fmt.Errorf("source: list the roles that own or are granted objects: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("source: list the roles that own or are granted objects: %w", err)
	}
	return out, nil
}

// missingRoles returns the roles of names that the target server lacks.
func missingRoles(ctx context.Context, conn *pgx.Conn, names []string) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT n FROM unnest($1::text[]) AS n
		WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = n) ORDER BY 1`, names)
	if err != nil {
		return nil, fmt.Errorf("target: look for roles: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("target: look for roles: %w", err)
	}
	return out, nil
}

// roleFindings reports the roles the target lacks. pglink does not copy
// roles (they belong to the server, not the database): the schema copy
// leaves out the ownership and grants that name them.
func roleFindings(missing []string) []Finding {
	if len(missing) == 0 {
		return nil
	}
	var sql []string
	for _, r := range missing {
		sql = append(sql, fmt.Sprintf("CREATE ROLE %s;", quote.Ident(r)))
	}
	return []Finding{finding(Warning, endpoint.Target, "roles_missing",
		"roles that own or are granted objects in the source database do not exist on the target, so the schema copy leaves out their ownership and grants: "+list(missing),
		"create them on the target before the link (with the attributes they need: LOGIN, a password, memberships; pg_dumpall --roles-only on the source lists them all): "+strings.Join(sql, " "),
		sql...)}
}
