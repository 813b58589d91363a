package link

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/apply"
	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/quote"
	"github.com/pglink/pglink/internal/seed"
	"github.com/pglink/pglink/internal/state"
)

// ddlPayload is what the source's DDL capture sends (state.captureSQL).
type ddlPayload struct {
	Query      string      `json:"query"`
	SearchPath string      `json:"search_path"`
	Role       string      `json:"role"`
	Tag        string      `json:"tag"`
	Seq        int         `json:"seq"`
	At         string      `json:"at"`
	Commands   []ddlObject `json:"commands"`
	Dropped    []ddlObject `json:"dropped"`
	XID        *uint32     `json:"xid"` // the source transaction that wrote it (see state.MarkCaptureBound)
}

type ddlObject struct {
	Tag      string  `json:"tag"`
	Type     string  `json:"type"`
	Schema   *string `json:"schema"`
	Identity string  `json:"identity"`
	Rel      *uint32 `json:"rel"` // the source table it is or belongs to
	Top      *uint32 `json:"top"` // a partition's partitioned table at the top of its tree
}

// ddlCarrier turns the source's schema changes into the statements the
// apply runs on the target (apply.Options.SchemaChange).
type ddlCarrier struct {
	link    string
	mode    string
	key     string
	bound   change.LSN            // from here on, a message names its transaction
	schemas map[string]bool       // schemas of the linked tables
	rels    map[uint32]bool       // source oids of the linked tables and their partitions
	roots   map[uint32]string     // the same oids' linked table (schema.name)
	tops    map[uint32]bool       // the oids of the linked tables themselves
	syncAt  map[string]change.LSN // where each linked table's copy was taken
	tgt     *endpoint.Endpoint
	conn    *pgx.Conn // its own target session, for held schema changes
	joins   *joins    // tables created on the source that join the link (join.go)
	log     *slog.Logger
	// last is the schema change last handed to the apply, for the record
	// of one the target refuses.
	last state.HeldDDL
}

// linkedRelsSQL lists the publication's tables with their partitions,
// their schemas and the linked table each is or belongs to.
const linkedRelsSQL = `WITH pub AS (
	SELECT pr.prrelid AS rel FROM pg_publication p JOIN pg_publication_rel pr ON pr.prpubid = p.oid WHERE p.pubname = $1
), tree AS (
	SELECT rel, rel AS root FROM pub UNION SELECT t.relid, pub.rel FROM pub CROSS JOIN LATERAL pg_partition_tree(pub.rel) t
)
SELECT c.oid, n.nspname, rn.nspname || '.' || r.relname, tree.rel = tree.root FROM tree JOIN pg_class c ON c.oid = tree.rel
	JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class r ON r.oid = tree.root JOIN pg_namespace rn ON rn.oid = r.relnamespace`

// newDDLCarrier reads what the carrier needs: the link's DDL settings from
// the target and the linked tables from the source; syncAt is where each
// linked table's copy was taken.
func (r *runner) newDDLCarrier(ctx context.Context, syncAt map[string]change.LSN) (*ddlCarrier, error) {
	s, err := state.LoadDDL(ctx, r.tgtConn, r.cfg.Name)
	if err != nil {
		return nil, err
	}
	d := &ddlCarrier{link: r.cfg.Name, mode: s.Mode, key: s.Key, bound: s.BoundFrom, schemas: map[string]bool{}, rels: map[uint32]bool{},
		roots: map[uint32]string{}, tops: map[uint32]bool{}, syncAt: syncAt, tgt: r.tgt, log: r.log}
	rows, err := r.srcConn.Query(ctx, linkedRelsSQL, r.names.Publication)
	if err != nil {
		return nil, fmt.Errorf("source: list the tables of publication %s: %w", r.names.Publication, err)
	}
	var oid uint32
	var schema, root string
	var top bool
	_, err = pgx.ForEachRow(rows, []any{&oid, &schema, &root, &top}, func() error {
		d.rels[oid], d.schemas[schema], d.roots[oid], d.tops[oid] = true, true, root, top
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("source: list the tables of publication %s: %w", r.names.Publication, err)
	}
	return d, nil
}

func (d *ddlCarrier) close(ctx context.Context) {
	if d.conn != nil {
		d.conn.Close(context.WithoutCancel(ctx))
	}
	d.joins.close(ctx)
}

// change returns the statements that carry the message c to the target,
// or none when c is no schema change of this link's tables.
func (d *ddlCarrier) change(ctx context.Context, c *change.Change) ([]apply.Statement, error) {
	if c.Prefix == state.TruncatePrefix {
		return d.truncate(ctx, c)
	}
	if c.Prefix != state.DDLPrefix {
		return nil, nil
	}
	p, ok := d.open(c.Content)
	if !ok {
		d.log.Warn("source: a schema change message not signed by this link's capture was left out", "at", c.MessageLSN.String())
		return nil, nil
	}
	if why := d.replayed(c, p.XID); why != "" {
		d.log.Warn("source: a schema change message was refused and left out", "reason", why, "at", c.MessageLSN.String())
		return d.record(c, p, state.EventDDLIgnored, p.Query+" -- refused: "+why), nil
	}
	d.log.Debug("schema change of the source", "at", c.MessageLSN.String(), "tag", p.Tag, "scope", d.scope(p), "mode", d.mode)
	switch d.scope(p) {
	case scopeOther:
		return nil, nil
	case scopeUnlinked:
		if out, ok, err := d.joinNew(ctx, c, p); ok || err != nil {
			return out, err
		}
		return d.record(c, p, state.EventDDLIgnored, p.Query+" -- touches no table the link carries (a new table the link's filters leave out, or one it cannot carry)"), nil
	}
	if d.mode == state.DDLIgnore {
		d.log.Warn("a schema change of the source was left out (--ddl ignore)", "statement", quote.FirstLine(p.Query, 200))
		return d.record(c, p, state.EventDDLIgnored, p.Query), nil
	}
	if other, err := d.dropsOtherIndex(ctx, p); err != nil || other {
		if err != nil {
			return nil, err
		}
		return d.record(c, p, state.EventDDLIgnored, p.Query+" -- drops no index of a table the link carries on the target"), nil
	}
	if err := d.joins.waitDDL(ctx, p, c.CommitLSN); err != nil {
		return nil, err
	}
	stmt, err := isolate(p)
	held, herr := d.held(ctx, c.MessageLSN)
	if herr != nil {
		return nil, herr
	}
	switch {
	case held == state.ResumeSkip:
		out := d.record(c, p, state.EventDDLSkipped, p.Query)
		return append(out, apply.Statement{SQL: state.ClearHeldSQL, Args: []string{d.link}, What: "forget the held schema change"}), nil
	case held == state.ResumeApply && err == nil:
		return append(d.statements(c, p, stmt), apply.Statement{SQL: state.ClearHeldSQL, Args: []string{d.link}, What: "forget the held schema change"}), nil
	case err != nil:
		return nil, d.hold(ctx, c, p.Query, err.Error())
	case d.mode == state.DDLStop:
		return nil, d.hold(ctx, c, stmt, "held by --ddl stop")
	}
	d.last = state.HeldDDL{LSN: c.MessageLSN, Statement: stmt}
	return d.statements(c, p, stmt), nil
}

// open checks the message's signature and decodes it.
func (d *ddlCarrier) open(content []byte) (ddlPayload, bool) {
	var p ddlPayload
	mac, payload, ok := bytes.Cut(content, []byte("\n"))
	if !ok || d.key == "" || string(mac) != ddlMAC(d.key, payload) {
		return p, false
	}
	return p, json.Unmarshal(payload, &p) == nil
}

// ddlMAC is the capture's signature: sha256(key || hex(sha256(key || payload))).
func ddlMAC(key string, payload []byte) string {
	inner := sha256.Sum256(append([]byte(key), payload...))
	outer := sha256.Sum256([]byte(key + hex.EncodeToString(inner[:])))
	return hex.EncodeToString(outer[:])
}

type ddlScope int

const (
	scopeOther    ddlScope = iota // outside the link's schemas: not the link's business
	scopeUnlinked                 // in them, but only on tables the link does not carry
	scopeLinked                   // carried
)

// scope tells whether a schema change is the link's: it is when it is in
// a schema of the linked tables and touches a linked table, or no table.
func (d *ddlCarrier) scope(p ddlPayload) ddlScope {
	objs := append(append([]ddlObject(nil), p.Commands...), p.Dropped...)
	inSchema, linked, unlinked := false, false, false
	for _, o := range objs {
		if o.Schema != nil && d.schemas[*o.Schema] {
			inSchema = true
		}
		if o.Rel != nil {
			if d.rels[*o.Rel] || d.newPartition(o) {
				linked = true
			} else {
				unlinked = true
			}
		}
	}
	switch {
	case linked:
		return scopeLinked
	case !inSchema:
		return scopeOther
	case unlinked:
		return scopeUnlinked
	}
	return scopeLinked
}

// statements runs stmt as the source ran it: as its role when the target
// has it and the link's role may take it (a managed target's admin role
// is no superuser), with its search path, then records it; the link's
// records of its tables follow (see followTables).
func (d *ddlCarrier) statements(c *change.Change, p ddlPayload, stmt string) []apply.Statement {
	d.followInMemory(p)
	out := d.followTables([]apply.Statement{
		{SQL: `SELECT set_config('pglink.search_path', current_setting('search_path'), true),
			set_config('search_path', $1, true)`, Args: []string{p.SearchPath}, What: "set the source's search path"},
		{SQL: `SELECT set_config('role', rolname, true) FROM pg_roles WHERE rolname = $1
			AND CASE WHEN current_setting('server_version_num')::int >= 160000 THEN pg_has_role(oid, 'SET') ELSE pg_has_role(oid, 'MEMBER') END`, Args: []string{p.Role},
			What: "take the role that changed the source's schema"},
		{SQL: stmt, What: "run the source's schema change " + quote.FirstLine(stmt, 200)},
		{SQL: `RESET ROLE`, What: "go back to the link's role"},
		{SQL: `SELECT set_config('search_path', current_setting('pglink.search_path'), true)`, What: "go back to the link's search path"},
	})
	return append(out, d.record(c, p, state.EventDDLApplied, stmt)...)
}

func (d *ddlCarrier) record(c *change.Change, p ddlPayload, event state.Event, detail string) []apply.Statement {
	return []apply.Statement{{SQL: state.DDLHistorySQL, Args: []string{d.link, string(event), detail, c.MessageLSN.String(), p.At},
		What: "record the schema change in pglink.history"}}
}

// held returns the decision of pglink resume-ddl for the schema change at
// lsn, or "".
func (d *ddlCarrier) held(ctx context.Context, lsn change.LSN) (string, error) {
	if err := d.connect(ctx); err != nil {
		return "", err
	}
	h, err := state.LoadHeldDDL(ctx, d.conn, d.link)
	if err != nil || h == nil || h.LSN != lsn {
		return "", err
	}
	return h.Decision, nil
}

func (d *ddlCarrier) connect(ctx context.Context) error {
	if d.conn != nil && !d.conn.IsClosed() {
		return nil
	}
	conn, err := d.tgt.Connect(ctx)
	if err != nil {
		return err
	}
	d.conn = conn
	return nil
}

// ErrDDLHeld is returned (wrapped) when the link holds before a schema
// change of the source.
type ErrDDLHeld struct {
	Link, Statement, Reason string
}

func (e *ErrDDLHeld) Error() string {
	return fmt.Sprintf("the link holds before a schema change of the source (%s): %s", e.Reason, quote.FirstLine(e.Statement, 300))
}

// hold records the schema change the link holds before and returns the
// error that stops the apply there.
func (d *ddlCarrier) hold(ctx context.Context, c *change.Change, stmt, reason string) error {
	h := state.HeldDDL{LSN: c.MessageLSN, Statement: stmt, Reason: reason}
	if err := state.HoldDDL(ctx, d.conn, d.link, h); err != nil {
		return err
	}
	return &ErrDDLHeld{Link: d.link, Statement: stmt, Reason: reason}
}

// recordRefused records the schema change the target refused, so that
// pglink resume-ddl can skip it.
func (d *ddlCarrier) recordRefused(ctx context.Context, err error) error {
	if d.last.LSN == 0 {
		return nil
	}
	if cerr := d.connect(ctx); cerr != nil {
		return cerr
	}
	h := d.last
	h.Reason = "the target refused it: " + err.Error()
	return state.HoldDDL(ctx, d.conn, d.link, h)
}

// ddlRemedy is the fix for a schema change the link holds before.
func ddlRemedy(link string) string {
	return fmt.Sprintf("pglink resume-ddl --name %s --apply (run it on the target; fix the target first if it refused it) or --skip (leave it out: make the change on the target by hand if it needs one)", link)
}

// concurrentlyRE finds CONCURRENTLY where it cannot run inside the
// transaction that applies it; the target's copy is read-only to others,
// so taking the lock is harmless.
var concurrentlyRE = regexp.MustCompile(`(?is)^(\s*(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX)\s+)CONCURRENTLY\s+`)

// isolate finds the statement of the schema change in what the client
// sent: the one statement sent, or the seq-th schema change of several.
// It refuses one it cannot tell apart (made inside a DO block or a
// function, or several statements it cannot match), which is held (see
// notAlone).
func isolate(p ddlPayload) (string, error) {
	stmts := seed.SplitStatements(p.Query)
	if len(stmts) == 1 && tagMatches(stmts[0], p.Tag) {
		return concurrentlyRE.ReplaceAllString(stmts[0], "$1"), nil
	}
	var cands []string
	for _, s := range stmts {
		if firesEventTrigger(s) {
			cands = append(cands, s)
		}
	}
	if p.Seq < len(cands) && tagMatches(cands[p.Seq], p.Tag) {
		return concurrentlyRE.ReplaceAllString(cands[p.Seq], "$1"), nil
	}
	return "", notAlone(p, len(stmts) == 1)
}

// notAlone says why a schema change that cannot be told apart from what
// the source ran is held, and what to do. Running what the source ran
// again on the target is never safe: a DO block or a function also
// changes rows, and those reach the target through the stream already.
func notAlone(p ddlPayload, inside bool) error {
	what := p.Tag
	if len(p.Commands) > 0 && p.Commands[0].Identity != "" {
		what += " of " + p.Commands[0].Identity
	}
	where := "was sent with other statements at once, and pglink cannot tell which is the schema change"
	if inside {
		where = "was made inside a DO block or a function called by the statement the source ran, which pglink cannot run alone; running the whole statement again on the target would repeat its data changes, which reach the target through the stream"
	}
	return fmt.Errorf("the %s %s: make the same schema change on the target by hand (BEGIN READ WRITE; SET LOCAL session_replication_role = replica; the change; COMMIT), then run pglink resume-ddl --skip", what, where)
}

// leadWords returns the first n words of a statement, upper-cased.
func leadWords(stmt string, n int) []string {
	f := strings.FieldsFunc(strings.ToUpper(stmt), func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '(' || r == ';'
	})
	return f[:min(n, len(f))]
}

// tagMatches tells whether a statement is of the command tag: its first
// word is the tag's, and the tag's other words follow among its first
// ones ("CREATE UNIQUE INDEX" is a CREATE INDEX).
func tagMatches(stmt, tag string) bool {
	words, want := leadWords(stmt, 8), strings.Fields(strings.ToUpper(tag))
	if len(want) == 0 || len(words) == 0 || words[0] != want[0] {
		return false
	}
	i := 1
	for _, w := range words[1:] {
		if i < len(want) && w == want[i] {
			i++
		}
	}
	return i == len(want)
}

// firesEventTrigger tells whether a statement is a schema change that
// fires event triggers (those on shared objects do not).
func firesEventTrigger(stmt string) bool {
	w := leadWords(stmt, 4)
	if len(w) < 2 {
		return false
	}
	switch w[0] {
	case "CREATE", "ALTER", "DROP", "COMMENT", "SECURITY", "IMPORT", "REFRESH":
	case "GRANT", "REVOKE":
		return strings.Contains(" "+strings.Join(leadWords(stmt, 64), " ")+" ", " ON ")
	default:
		return false
	}
	obj := w[1]
	if obj == "OR" || obj == "UNIQUE" {
		return true
	}
	switch obj {
	case "DATABASE", "ROLE", "USER", "GROUP", "TABLESPACE", "EVENT", "SYSTEM":
		return false
	}
	return true
}
