package assess

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
)

// dbSettingsFindings lists the settings the source database gives its
// sessions (ALTER DATABASE ... SET, ALTER ROLE ... IN DATABASE ... SET),
// which the seeding carries to the target, and those it leaves out.
func dbSettingsFindings(ctx context.Context, conn *pgx.Conn) ([]Finding, error) {
	settings, err := catalog.DatabaseSettings(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	var carried, never []string
	for _, s := range settings {
		if catalog.NeverCarried[s.Name] {
			never = append(never, s.Describe())
		} else {
			carried = append(carried, s.Describe())
		}
	}
	var fs []Finding
	if len(carried) > 0 {
		fs = append(fs, finding(Info, endpoint.Source, "database_settings",
			"the database's settings are carried to the target at seeding: "+list(carried)+
				". A setting for a role the target lacks, one the target has already with another value, and one the target refuses (a superuser's setting, an extension's the target does not know) are left out and reported in pglink.history",
			""))
	}
	if len(never) > 0 {
		fs = append(fs, finding(Info, endpoint.Source, "database_settings_not_carried",
			"not carried to the target, since pglink makes the target read-only while linked and opens it at failover: "+list(never),
			"set them on the target after the failover if it should have them"))
	}
	return fs, nil
}
