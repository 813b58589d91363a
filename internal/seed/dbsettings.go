package seed

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
)

// SettingsReport says what CarrySettings did with each of the source
// database's settings (catalog.DBSetting.Describe of each).
type SettingsReport struct {
	Set []string // the target has it now
	// Kept are the settings the target had already, at the same level, with
	// another value: the target's own choice stays.
	Kept []string
	// Skipped are the settings left out on purpose, with why; MissingRoles
	// the roles they were for that the target lacks.
	Skipped      []string
	MissingRoles []string
	// Failed are the settings the target refused (a setting only a
	// superuser may set, an extension's setting the target does not know),
	// with the target's error. Seeding goes on without them.
	Failed []string
}

// CarrySettings gives the target database the settings the source database
// gives its sessions (ALTER DATABASE ... SET, and ALTER ROLE ... IN
// DATABASE ... SET for roles the target has), so that the application
// finds the same behaviour there after a failover. It never carries
// catalog.NeverCarried, and a setting the target refuses is reported, not
// an error: only a failure to read either side is.
func CarrySettings(ctx context.Context, o SchemaOptions) (SettingsReport, error) {
	var rep SettingsReport
	settings, err := sourceSettings(ctx, o.Source)
	if err != nil || len(settings) == 0 {
		return rep, err
	}
	conn, err := connectTarget(ctx, o.Target)
	if err != nil {
		return rep, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	have, roles, err := targetSettings(ctx, conn)
	if err != nil {
		return rep, err
	}
	db := conn.Config().Database
	for _, s := range settings {
		what := s.Describe()
		switch old, set := have[settingKey(s)]; {
		case catalog.NeverCarried[s.Name]:
			rep.Skipped = append(rep.Skipped, what+": pglink manages it on the target")
		case s.Role != "" && !roles[s.Role]:
			rep.Skipped = append(rep.Skipped, what+": role "+s.Role+" does not exist on the target")
			rep.MissingRoles = appendOnce(rep.MissingRoles, s.Role)
		case set && old != s.Value:
			rep.Kept = append(rep.Kept, what+": the target has "+s.Name+" = "+old+" already")
		case set:
			rep.Set = append(rep.Set, what)
		default:
			if _, err := conn.Exec(ctx, s.SQL(db)); err != nil {
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) {
					return rep, fmt.Errorf("target: %s: %w", s.SQL(db), err)
				}
				rep.Failed = append(rep.Failed, what+": "+pgErr.Message)
				continue
			}
			rep.Set = append(rep.Set, what)
		}
	}
	return rep, nil
}

func settingKey(s catalog.DBSetting) string { return s.Role + "\x00" + s.Name }

func sourceSettings(ctx context.Context, source string) ([]catalog.DBSetting, error) {
	cfg, err := parseConn(endpoint.Source, source)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", describeConn("source", source), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	settings, err := catalog.DatabaseSettings(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	return settings, nil
}

// targetSettings returns the settings the target database has (by
// settingKey) and its roles.
func targetSettings(ctx context.Context, conn *pgx.Conn) (map[string]string, map[string]bool, error) {
	settings, err := catalog.DatabaseSettings(ctx, conn)
	if err != nil {
		return nil, nil, fmt.Errorf("target: %w", err)
	}
	have := make(map[string]string, len(settings))
	for _, s := range settings {
		have[settingKey(s)] = s.Value
	}
	rows, err := conn.Query(ctx, "SELECT rolname FROM pg_roles")
	if err != nil {
		return nil, nil, fmt.Errorf("target: list roles: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, nil, fmt.Errorf("target: list roles: %w", err)
	}
	roles := make(map[string]bool, len(names))
	for _, n := range names {
		roles[n] = true
	}
	return have, roles, nil
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
