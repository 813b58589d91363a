package assess

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/quote"
)

// Server describes one side as the report shows it.
type Server struct {
	Address    string `json:"address"` // user@host:port/database, never a password
	Version    string `json:"version"`
	VersionNum int    `json:"version_num"`
	Database   string `json:"database"`
	// DatabaseExists is false for a target database pglink start would create.
	DatabaseExists bool   `json:"database_exists"`
	SizeBytes      int64  `json:"size_bytes"`
	Tables         int    `json:"tables"`      // tables a link would carry (after the filters)
	TableBytes     int64  `json:"table_bytes"` // their size, with indexes and TOAST
	Encoding       string `json:"encoding"`    // of the database, or of template1 when it does not exist
	Collate        string `json:"collate"`     // LC_COLLATE, same
	Ctype          string `json:"ctype"`       // LC_CTYPE, same
	SharedBuffers  int64  `json:"shared_buffers_bytes"`
	FreeDisk       *int64 `json:"free_disk_bytes"` // null when it cannot be found out
	FreeDiskNote   string `json:"free_disk_note"`  // where it was measured, or why it could not be
}

// readServer reads the version, and the encoding, locale and size of the
// database: conn's own database when exists, else database db that does not
// exist yet, for which template1's settings are read (a new database gets
// them).
func readServer(ctx context.Context, conn *pgx.Conn, db string, exists bool) (Server, error) {
	s := Server{Database: db, DatabaseExists: exists}
	err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, current_setting('server_version'),
		CASE WHEN $1 THEN current_database() ELSE $2 END,
		pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
		CASE WHEN $1 THEN pg_database_size(d.oid) ELSE 0 END,
		(SELECT setting::int8 * 8192 FROM pg_settings WHERE name = 'shared_buffers')
		FROM pg_database d WHERE d.datname = CASE WHEN $1 THEN current_database() ELSE 'template1' END`,
		exists, db).Scan(&s.VersionNum, &s.Version, &s.Database, &s.Encoding, &s.Collate, &s.Ctype, &s.SizeBytes, &s.SharedBuffers)
	if err != nil {
		return s, fmt.Errorf("read server version and database: %w", err)
	}
	return s, nil
}

// major returns the major version of a server_version_num.
func major(num int) int { return num / 10000 }

// encodingFindings compares the encoding and locale of the two databases.
// Rows travel in UTF8 between pglink and both servers, so any source
// encoding converts into a UTF8 target; into another encoding, characters
// it lacks make the copy fail. SQL_ASCII stores bytes unchecked.
func encodingFindings(src, tgt Server) []Finding {
	var fs []Finding
	create := fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 ENCODING %s LC_COLLATE %s LC_CTYPE %s;",
		quote.Ident(tgt.Database), quote.Literal(src.Encoding), quote.Literal(src.Collate), quote.Literal(src.Ctype))
	where := "create the target database like the source's before the link: "
	if tgt.DatabaseExists {
		where = "the target database exists already: drop it and create it like the source's (it must be empty): "
	}
	if src.Encoding != tgt.Encoding {
		sev, why := Warning, "characters the target's encoding lacks make the copy fail"
		switch {
		case src.Encoding == "SQL_ASCII":
			why = "SQL_ASCII stores bytes unchecked, and bytes that are not valid in the target's encoding make the copy fail"
		case tgt.Encoding == "UTF8":
			sev, why = Info, "every character converts into UTF8"
		}
		fs = append(fs, finding(sev, endpoint.Target, "encoding",
			fmt.Sprintf("the source database's encoding is %s, the target's %s: %s", src.Encoding, tgt.Encoding, why),
			where+create, create))
	}
	if src.Collate != tgt.Collate || src.Ctype != tgt.Ctype {
		fs = append(fs, finding(Warning, endpoint.Target, "collation",
			fmt.Sprintf("the source database's locale is LC_COLLATE %s, LC_CTYPE %s; the target's LC_COLLATE %s, LC_CTYPE %s: text sorts and compares differently (ORDER BY, text keys, upper/lower)",
				src.Collate, src.Ctype, tgt.Collate, tgt.Ctype),
			where+create, create))
	}
	return fs
}
