package link

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pglink/pglink/internal/state"
	"github.com/spf13/pflag"
)

// AddFlags defines the options of a link on fs, filling cfg: pglink
// start's flags, and the keys of a link in pglink serve's file (each key
// is set as its flag is), so both read the same names the same way.
func AddFlags(fs *pflag.FlagSet, cfg *Config) {
	fs.StringSliceVar(&cfg.Tables, "tables", nil, "tables to link, comma-separated schema.table or table patterns, * allowed (default: all)")
	fs.StringSliceVar(&cfg.ExcludeTables, "exclude-tables", nil, "tables to leave out, same patterns as --tables")
	fs.IntVar(&cfg.Jobs, "jobs", 0, "parallel copy jobs while seeding (0: one per CPU)")
	fs.IntVar(&cfg.ApplySessions, "apply-sessions", 2, "target sessions the apply uses, 1 or 2: each takes one of the target's replication origin entries (max_replication_slots)")
	fs.StringVar(&cfg.Schema, "schema", SchemaCopy, "copy: copy the schema with pg_dump; existing: the target already holds the tables (pglink empties them before it copies)")
	fs.BoolVar(&cfg.TruncateExisting, "truncate-existing", false, "with --schema existing: empty target tables that hold rows (refused otherwise)")
	fs.StringVar(&cfg.DDL, "ddl", "", "the source's schema changes: replicate (carry them to the target in order; the default for a new link), stop (hold the link at each until pglink resume-ddl) or ignore; default for a link that exists: keep its mode")
	fs.StringVar(&cfg.Binary, "binary", BinaryOff, "auto: stream values in binary form when every linked column has a built-in type the target shares (source PostgreSQL 14+, target as new or newer), else as text; off: always as text")
	fs.Var((*SizeValue)(&cfg.WALWarnBytes), "wal-warn", "warn when the link's slot retains more WAL than this on the source, like 512MB or 2GB (default: half of the source's max_slot_wal_keep_size, else 1GB)")
}

// Check says what is wrong with the options AddFlags filled, naming the
// flag (a key of the same name in pglink serve's file).
func (c *Config) Check() error {
	switch {
	case c.Schema != SchemaCopy && c.Schema != SchemaExisting:
		return fmt.Errorf("--schema %q: use copy (pg_dump the schema into the target) or existing (the target holds the tables)", c.Schema)
	case c.Jobs < 0:
		return fmt.Errorf("--jobs %d: give a positive number of parallel copy jobs (0: one per CPU)", c.Jobs)
	case c.ApplySessions != 1 && c.ApplySessions != 2:
		return fmt.Errorf("--apply-sessions %d: give 1 or 2", c.ApplySessions)
	case c.Binary != "" && c.Binary != BinaryAuto && c.Binary != BinaryOff:
		return fmt.Errorf("--binary %q: use auto (binary values where every linked column allows them) or off (text)", c.Binary)
	}
	if c.DDL != "" {
		return state.ValidDDLMode(c.DDL)
	}
	return nil
}

// SizeValue is a byte count given as a number with an optional unit (kB,
// MB, GB, TB, as PostgreSQL writes them; powers of 1024).
type SizeValue int64

func (s *SizeValue) String() string {
	if *s == 0 {
		return ""
	}
	return strconv.FormatInt(int64(*s), 10)
}

// Set parses a size like 512MB, 2GB or 1048576.
func (s *SizeValue) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = SizeValue(n)
	return nil
}

// Type names the value in flag help.
func (s *SizeValue) Type() string { return "size" }

// ParseSize parses a byte count with an optional unit: B, kB, MB, GB, TB
// (case-insensitive, powers of 1024).
func ParseSize(v string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: give a number of bytes, or one with a unit like 512MB or 2GB", v)
	}
	return n * mult, nil
}
