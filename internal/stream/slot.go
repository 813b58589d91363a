// Package stream is the source side of a link's change stream: it owns the
// replication connection, decodes pgoutput into change.Changes, spools
// streamed (in-progress) transactions to disk so memory stays bounded, and
// reports to the source, through standby status messages, only what the
// target has durably applied.
package stream

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/quote"
)

// Errors a caller can test with errors.Is; the returned errors also wrap the
// server's *pgconn.PgError.
var (
	ErrSlotMissing = errors.New("replication slot does not exist")
	ErrSlotActive  = errors.New("replication slot is active in another process")
)

// SQLSTATEs the server uses for a missing slot (undefined_object) and for a
// slot held by another walsender (object_in_use).
const (
	sqlstateUndefinedObject = "42704"
	sqlstateObjectInUse     = "55006"
)

// slotNameRE is PostgreSQL's rule for slot names (ReplicationSlotValidateName):
// lower-case letters, digits and underscores, at most NAMEDATALEN-1 bytes.
// Replication commands take the name unquoted, so this check also keeps any
// other text out of the command.
var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

func checkSlotName(name string) error {
	if !slotNameRE.MatchString(name) {
		return fmt.Errorf("source: invalid replication slot name %q: use 1 to 63 lower-case letters, digits or underscores", name)
	}
	return nil
}

// SlotInfo is what CREATE_REPLICATION_SLOT reports.
type SlotInfo struct {
	Name string
	// ConsistentPoint is the LSN from which the slot decodes: every
	// transaction that commits after it is streamed, every one before it is
	// in the exported snapshot.
	ConsistentPoint change.LSN
	// SnapshotName is empty unless the snapshot was exported.
	SnapshotName string
}

// ReplicationConfig returns a copy of cfg that opens a logical replication
// connection (replication=database): such a connection accepts replication
// commands and, unlike a physical one, is bound to cfg's database.
func ReplicationConfig(cfg *pgconn.Config) *pgconn.Config {
	c := cfg.Copy()
	params := make(map[string]string, len(c.RuntimeParams)+1)
	for k, v := range c.RuntimeParams {
		params[k] = v
	}
	params["replication"] = "database"
	c.RuntimeParams = params
	return c
}

// CreateSlot creates a logical slot with the pgoutput plugin on conn, a
// replication=database connection.
//
// With exportSnapshot the snapshot stays valid only until the next command on
// conn or until conn closes: the caller keeps conn open and idle while copy
// jobs import it (SET TRANSACTION SNAPSHOT). A temporary slot vanishes when
// conn closes.
//
// On PostgreSQL 17+ a permanent slot is created with FAILOVER true: a
// standby that synchronizes slots (sync_replication_slots = on) keeps a copy
// of it, so the link resumes from the standby once it is promoted instead
// of being seeded again. Without such standbys the flag changes nothing.
// Older servers take the legacy syntax (TEMPORARY, EXPORT_SNAPSHOT,
// NOEXPORT_SNAPSHOT), which every server from 10 on accepts.
func CreateSlot(ctx context.Context, conn *pgconn.PgConn, name string, temporary, exportSnapshot bool) (SlotInfo, error) {
	if err := checkSlotName(name); err != nil {
		return SlotInfo{}, err
	}
	version, err := serverVersionNum(ctx, conn)
	if err != nil {
		return SlotInfo{}, err
	}
	res, err := pglogrepl.ParseCreateReplicationSlot(conn.Exec(ctx, createSlotCommand(name, version, temporary, exportSnapshot)))
	if err != nil {
		return SlotInfo{}, fmt.Errorf("source: create replication slot %s: %w", name, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return SlotInfo{}, fmt.Errorf("source: create replication slot %s: consistent point: %w", name, err)
	}
	return SlotInfo{Name: res.SlotName, ConsistentPoint: lsn, SnapshotName: res.SnapshotName}, nil
}

// createSlotCommand is CREATE_REPLICATION_SLOT for a logical pgoutput
// slot; name is checked already. A temporary slot cannot fail over.
func createSlotCommand(name string, versionNum int, temporary, exportSnapshot bool) string {
	tmp := ""
	if temporary {
		tmp = " TEMPORARY"
	}
	if versionNum < 170000 {
		action := "NOEXPORT_SNAPSHOT"
		if exportSnapshot {
			action = "EXPORT_SNAPSHOT"
		}
		return fmt.Sprintf("CREATE_REPLICATION_SLOT %s%s LOGICAL pgoutput %s", name, tmp, action)
	}
	action := "nothing"
	if exportSnapshot {
		action = "export"
	}
	opts := fmt.Sprintf("SNAPSHOT '%s'", action)
	if !temporary {
		opts += ", FAILOVER true"
	}
	return fmt.Sprintf("CREATE_REPLICATION_SLOT %s%s LOGICAL pgoutput (%s)", name, tmp, opts)
}

// dropRetryFor bounds how long DropSlot waits for the slot's walsender to
// let go: a walsender that was just told to stop releases it within moments.
const dropRetryFor = 10 * time.Second

// DropSlot drops slot name over conn (a replication connection). When the
// slot is still active - typically a walsender of a stream that was just
// stopped - it retries for a few seconds rather than use DROP ... WAIT, which
// would block without bound on a slot held by another live process.
func DropSlot(ctx context.Context, conn *pgconn.PgConn, name string) error {
	if err := checkSlotName(name); err != nil {
		return err
	}
	deadline := time.Now().Add(dropRetryFor)
	for {
		err := pglogrepl.DropReplicationSlot(ctx, conn, name, pglogrepl.DropReplicationSlotOptions{})
		if err == nil {
			return nil
		}
		err = slotError(name, err)
		if !errors.Is(err, ErrSlotActive) || time.Now().After(deadline) {
			return fmt.Errorf("drop: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("source: drop replication slot %s: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// slotError turns the server's errors about a slot into ones that say what
// to do, keeping the original error wrapped.
func slotError(name string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case sqlstateUndefinedObject:
			return fmt.Errorf("source: replication slot %s does not exist (it was dropped, or never created): %w: %w", name, ErrSlotMissing, err)
		case sqlstateObjectInUse:
			return fmt.Errorf("source: replication slot %s is in use by another process (another pglink, or a subscriber): %w: %w", name, ErrSlotActive, err)
		}
	}
	return fmt.Errorf("source: replication slot %s: %w", name, err)
}

// serverVersionNum returns the server's version as server_version_num
// (e.g. 150004). SHOW is one of the commands a walsender accepts.
func serverVersionNum(ctx context.Context, conn *pgconn.PgConn) (int, error) {
	results, err := conn.Exec(ctx, "SHOW server_version_num").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("source: read server_version_num: %w", err)
	}
	if len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) != 1 {
		return 0, errors.New("source: read server_version_num: unexpected result shape")
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(results[0].Rows[0][0])))
	if err != nil {
		return 0, fmt.Errorf("source: read server_version_num: %w", err)
	}
	return v, nil
}

// pluginArgs returns pgoutput's START_REPLICATION options for a server.
// Protocol 2 with streaming of in-progress transactions and logical messages
// exist from PostgreSQL 14; PostgreSQL 13 only speaks protocol 1 and sends
// neither. With binary (PostgreSQL 14+), pgoutput sends each value of a
// type with a send function in its binary form; the caller asks for it only
// when every published column has a built-in type that the target knows by
// the same OID (the binary forms of arrays and records embed type OIDs,
// and user-defined types have other OIDs on the target).
func pluginArgs(versionNum int, publication string, binary bool) []string {
	args := []string{
		// pgoutput splits the value as a list of identifiers
		// (SplitIdentifierString), so the name is quoted as one first.
		"publication_names " + quote.Literal(quote.Ident(publication)),
	}
	if versionNum >= 140000 {
		args = append([]string{"proto_version '2'"}, append(args, "streaming 'on'", "messages 'true'")...)
		if binary {
			args = append(args, "binary 'true'")
		}
		return args
	}
	return append([]string{"proto_version '1'"}, args...)
}

// DefaultSilence is the silence limit when the source's wal_sender_timeout
// is 0 (the server never gives up on a silent client).
const DefaultSilence = 60 * time.Second

// silenceMargin is added to wal_sender_timeout, so that the server, which
// ends a walsender that heard nothing from pglink for that long, has
// released the slot when pglink connects again.
const silenceMargin = 2 * time.Second

// silenceLimit is how long the source may send nothing before pglink
// gives its replication connection up: its wal_sender_timeout plus a
// margin. A live server is never silent that long: pglink asks for a
// reply from half of it on (see sendStatus), and the link's heartbeat
// puts a transaction in its WAL every second.
func silenceLimit(ctx context.Context, conn *pgconn.PgConn) (time.Duration, error) {
	results, err := conn.Exec(ctx, "SHOW wal_sender_timeout").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("source: read wal_sender_timeout: %w", err)
	}
	if len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) != 1 {
		return 0, errors.New("source: read wal_sender_timeout: unexpected result shape")
	}
	d, err := parseSettingDuration(string(results[0].Rows[0][0]))
	if err != nil {
		return 0, fmt.Errorf("source: read wal_sender_timeout: %w", err)
	}
	if d <= 0 {
		return DefaultSilence, nil
	}
	return d + silenceMargin, nil
}

// parseSettingDuration reads a time setting as SHOW gives it: "60s",
// "1min", "500ms", "0" (a bare number is in milliseconds, the unit of
// wal_sender_timeout).
func parseSettingDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '-' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cannot read %q as a time", s)
	}
	units := map[string]time.Duration{"": time.Millisecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	u, ok := units[unit]
	if !ok {
		return 0, fmt.Errorf("cannot read %q as a time: unknown unit %q", s, unit)
	}
	return time.Duration(n) * u, nil
}
