package catalog

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/quote"
)

// DBSetting is one setting a database gives its sessions: set with ALTER
// DATABASE ... SET (Role empty), or for one role in it with ALTER ROLE
// ... IN DATABASE ... SET.
type DBSetting struct {
	Role  string // empty: every role
	Name  string
	Value string // as pg_db_role_setting keeps it
}

// NeverCarried names the settings a link never copies to its target:
// pglink makes the target database read-only itself while linked, and
// opens it at failover.
var NeverCarried = map[string]bool{"default_transaction_read_only": true}

// DatabaseSettings lists the settings of the connection's database, those
// for every role first, in name order. pg_db_role_setting is readable by
// every user.
func DatabaseSettings(ctx context.Context, conn *pgx.Conn) ([]DBSetting, error) {
	rows, err := conn.Query(ctx, `SELECT coalesce(r.rolname, ''), c.item
		FROM pg_db_role_setting s
		JOIN pg_database d ON d.oid = s.setdatabase AND d.datname = current_database()
		LEFT JOIN pg_roles r ON r.oid = s.setrole
		CROSS JOIN LATERAL unnest(s.setconfig) WITH ORDINALITY AS c(item, n)
		ORDER BY s.setrole <> 0, 1, c.n`)
	if err != nil {
		return nil, fmt.Errorf("read the database's settings: %w", err)
	}
	var out []DBSetting
	var role, item string
	_, err = pgx.ForEachRow(rows, []any{&role, &item}, func() error {
		name, value, _ := strings.Cut(item, "=")
		out = append(out, DBSetting{Role: role, Name: strings.ToLower(name), Value: value})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the database's settings: %w", err)
	}
	return out, nil
}

// SQL is the statement that gives database db this setting, written as
// pg_dump writes it: the value always quoted, and a list setting as a list
// of quoted items.
func (s DBSetting) SQL(db string) string {
	target := "DATABASE " + quote.Ident(db)
	if s.Role != "" {
		target = "ROLE " + quote.Ident(s.Role) + " IN DATABASE " + quote.Ident(db)
	}
	return fmt.Sprintf("ALTER %s SET %s TO %s", target, quote.Ident(s.Name), s.quotedValue())
}

// Describe names the setting for messages: "work_mem = 64MB", or
// "work_mem = 64MB for role app".
func (s DBSetting) Describe() string {
	d := s.Name + " = " + s.Value
	if s.Role != "" {
		d += " for role " + s.Role
	}
	return d
}

// listSettings are the settings PostgreSQL keeps as lists of quoted items
// (GUC_LIST_QUOTE); pg_dump knows the same list.
var listSettings = map[string]bool{"local_preload_libraries": true, "search_path": true,
	"session_preload_libraries": true, "shared_preload_libraries": true, "temp_tablespaces": true,
	"unix_socket_directories": true}

func (s DBSetting) quotedValue() string {
	if !listSettings[s.Name] {
		return quote.Literal(s.Value)
	}
	items := splitList(s.Value)
	if len(items) == 0 {
		return "''"
	}
	for i, it := range items {
		items[i] = quote.Literal(it)
	}
	return strings.Join(items, ", ")
}

// splitList splits a list setting as PostgreSQL's SplitGUCList does:
// items separated by commas and blanks, each maybe double-quoted (with ""
// for a quote inside).
func splitList(v string) []string {
	var items []string
	for i := 0; i < len(v); {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == '\n' || v[i] == '\r' || v[i] == ',') {
			i++
		}
		if i >= len(v) {
			break
		}
		var b strings.Builder
		if v[i] == '"' {
			for i++; i < len(v); i++ {
				if v[i] == '"' {
					if i+1 < len(v) && v[i+1] == '"' {
						i++
					} else {
						i++
						break
					}
				}
				b.WriteByte(v[i])
			}
		} else {
			for ; i < len(v) && v[i] != ','; i++ {
				b.WriteByte(v[i])
			}
		}
		items = append(items, strings.TrimRight(b.String(), " \t\n\r"))
	}
	return items
}
