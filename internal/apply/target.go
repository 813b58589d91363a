package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/change"
	"github.com/pglink/pglink/internal/quote"
)

// table is a source relation mapped onto its target table: one targetCol
// per source column, in the source's column order (the order of the
// values in every Tuple of that relation).
type table struct {
	rel         *change.Relation
	quoted      string // "schema"."name"
	key         string // schema.name, unquoted: the SyncLSN key
	partitioned bool   // relkind 'p': ctid is not unique, ONLY would match nothing
	// identityAlways is set when a column is GENERATED ALWAYS AS IDENTITY on
	// the target: PostgreSQL refuses values for it unless an INSERT says
	// OVERRIDING SYSTEM VALUE, and an UPDATE may only set it to DEFAULT.
	identityAlways bool
	// binaryOK says that every column may take values in binary form
	// (targetCol.binaryOK): no value needs checking.
	binaryOK bool
	cols     []targetCol
	// extra are the target's own columns that the source does not send
	// (quoted, not generated): an UPDATE that moves a row keeps them.
	extra []string
	stmts map[string]*stmt // by shape key, see shapeKey
	// fires is set when triggers or rules of the target table fire in the
	// apply session (ENABLE ALWAYS or ENABLE REPLICA): its changes are
	// applied one by one, in order with every other table's.
	fires bool
	// keyCols are the columns of the key (primary key or replica identity
	// index; none with REPLICA IDENTITY FULL); foldable says whether the
	// table's changes may be folded into set-based statements (see
	// fold.go): no identity column, no firing trigger, and an array type
	// for every column.
	keyCols  []int
	foldable bool
	bulk     map[string]*stmt // set-based statements, by bulkKey
	// ownKeys says that two rows of different keys never wait for each
	// other on the target: no unique index or exclusion constraint but
	// those that hold the whole key (none at all for a table without a
	// key), and not partitioned. Only then may rows of keys that another
	// session's open batch does not touch be applied beside it
	// (commitOnOtherLane).
	ownKeys bool
}

// targetCol is one target column that receives a source column.
type targetCol struct {
	quoted         string
	typeOID        uint32 // the target's type: enum, domain and composite OIDs differ between databases
	identityAlways bool   // GENERATED ALWAYS AS IDENTITY
	// equality says whether the type has a default btree or hash operator
	// class, so = (and IS NOT DISTINCT FROM) works on it. Types without one
	// (json, point, xml, composites...) are compared as text when the whole
	// old row identifies the row (REPLICA IDENTITY FULL).
	equality bool
	// arrayOID is the type of the array a set-based statement passes the
	// column's values in: the column type's array type, or text[] (with
	// cast naming the column type) for a column that is an array or a composite.
	arrayOID uint32
	cast     string
	delim    byte // the element delimiter of the array's text form
	// elem encodes the column's values for the binary form of its array
	// (see binarray.go); nil for types whose arrays go in text form.
	elem elemEncoder
	// binaryOK says that the source column's values may come in binary
	// form: the source and target types are the same built-in type (see
	// binvalue.go). wire is the form (change.ValueText or ValueBinary) in
	// which set-based statements take the column's values (sameWire).
	binaryOK bool
	wire     byte
}

// targetColumnsSQL reads the target table's kind and columns with the
// equality capability of each column's type. Domains are followed to their
// base type and arrays to their element type, because = on those resolves
// to the base or element type's operator. Enums, ranges and multiranges
// always have equality; composites are compared as text (their record
// equality needs every field's type to have one).
const targetColumnsSQL = `
WITH RECURSIVE cols AS (
	SELECT a.attname, a.atttypid, a.attgenerated <> '' AS generated, a.attidentity = 'a' AS identity_always, a.attnum
	FROM pg_attribute a
	WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
), chain(start, typ) AS (
	SELECT DISTINCT atttypid, atttypid FROM cols
	UNION
	SELECT c.start, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END
	FROM chain c JOIN pg_type t ON t.oid = c.typ
	WHERE t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0)
), leaf AS (
	SELECT c.start, t.typtype IN ('e', 'r', 'm') OR (t.typtype = 'b' AND EXISTS (
		SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
		WHERE oc.opcdefault AND am.amname IN ('btree', 'hash') AND oc.opcintype = t.oid)) AS equality
	FROM chain c JOIN pg_type t ON t.oid = c.typ
	WHERE NOT (t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0))
)
SELECT cols.attname, cols.atttypid, cols.generated, cols.identity_always, coalesce(bool_or(leaf.equality), false),
	CASE WHEN t.typtype = 'c' OR (t.typtype = 'd' AND (SELECT b.typtype FROM pg_type b WHERE b.oid = t.typbasetype) IN ('c', 'd'))
		THEN 0 ELSE t.typarray END,
	t.typdelim::text, format_type(cols.atttypid, -1)
FROM cols LEFT JOIN leaf ON leaf.start = cols.atttypid JOIN pg_type t ON t.oid = cols.atttypid
GROUP BY cols.attname, cols.atttypid, cols.generated, cols.identity_always, cols.attnum, t.oid
ORDER BY cols.attnum`

// firesSQL says whether a trigger or rule of the table (or of one of its
// partitions) fires in a session with session_replication_role = replica.
// (format_type with typmod -1 names a type without a length as its own
// cast does: bpchar, not character, which means character(1).)
const firesSQL = `WITH rels AS (SELECT $1::oid AS relid UNION SELECT relid FROM pg_partition_tree($1::oid))
SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid IN (SELECT relid FROM rels) AND tgenabled IN ('A', 'R'))
	OR EXISTS (SELECT 1 FROM pg_rewrite WHERE ev_class IN (SELECT relid FROM rels)
		AND ev_enabled IN ('A', 'R') AND rulename <> '_RETURN')`

// loadTable maps rel onto the target. A missing table or column is an
// error that says how to fix it: the link cannot apply the source's rows
// anywhere else.
func loadTable(ctx context.Context, conn *pgx.Conn, rel *change.Relation) (*table, error) {
	t := &table{rel: rel, quoted: rel.QualifiedName(), key: rel.Schema + "." + rel.Name, stmts: map[string]*stmt{}, bulk: map[string]*stmt{}}
	var oid uint32
	var relkind string
	err := conn.QueryRow(ctx, `SELECT c.oid, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, rel.Schema, rel.Name).Scan(&oid, &relkind)
	if err == pgx.ErrNoRows {
		return nil, fmt.Errorf("target has no table %s, which the source publishes: create it on the target (for example from pg_dump --schema-only --table of the source), or take it out of the link", t.quoted)
	}
	if err != nil {
		return nil, fmt.Errorf("look up target table %s: %w", t.quoted, err)
	}
	t.partitioned = relkind == "p"
	have, order, err := readTargetColumns(ctx, conn, oid)
	if err != nil {
		return nil, fmt.Errorf("look up columns of target table %s: %w", t.quoted, err)
	}
	var missing, generated []string
	t.binaryOK = true
	sent := make(map[string]bool, len(rel.Columns))
	for _, c := range rel.Columns {
		sent[c.Name] = true
		tc, ok := have[c.Name]
		switch {
		case !ok:
			missing = append(missing, quote.Ident(c.Name))
		case tc.generated:
			generated = append(generated, quote.Ident(c.Name))
		}
		tc.binaryOK = ok && passesBinary(c, &tc.targetCol)
		t.binaryOK = t.binaryOK && tc.binaryOK
		t.cols = append(t.cols, tc.targetCol)
		t.identityAlways = t.identityAlways || tc.identityAlways
	}
	for _, name := range order {
		if tc := have[name]; !sent[name] && !tc.generated {
			t.extra = append(t.extra, tc.quoted)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("target table %s lacks column(s) %s that the source sends: add them on the target (ALTER TABLE %s ADD COLUMN ... with the source's types)",
			t.quoted, strings.Join(missing, ", "), t.quoted)
	}
	if len(generated) > 0 {
		return nil, fmt.Errorf("target table %s has generated column(s) %s that are plain columns on the source: make them plain columns on the target",
			t.quoted, strings.Join(generated, ", "))
	}
	if err := conn.QueryRow(ctx, firesSQL, oid).Scan(&t.fires); err != nil {
		return nil, fmt.Errorf("look up triggers of target table %s: %w", t.quoted, err)
	}
	t.foldable = foldable(t)
	if !t.partitioned {
		keyNames := make([]string, 0, len(t.keyCols))
		for _, i := range t.keyCols {
			keyNames = append(keyNames, rel.Columns[i].Name)
		}
		if err := conn.QueryRow(ctx, ownKeysSQL, oid, keyNames).Scan(&t.ownKeys); err != nil {
			return nil, fmt.Errorf("look up unique indexes of target table %s: %w", t.quoted, err)
		}
	}
	return t, nil
}

// ownKeysSQL says whether every unique index of the table holds all the
// key columns ($2; a table without a key may have none) and no exclusion
// constraint exists: then rows of different keys never conflict.
const ownKeysSQL = `SELECT NOT EXISTS (
	SELECT 1 FROM pg_index i
	WHERE i.indrelid = $1::oid AND (i.indisunique OR i.indisexclusion)
	AND (i.indisexclusion OR cardinality($2::text[]) = 0 OR NOT $2::text[] <@ ARRAY(
		SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey::int2[]))))`

// foldable says whether t's changes may be folded (see fold.go), and sets
// t.keyCols. A table without a key (REPLICA IDENTITY FULL or NOTHING)
// folds its inserts only.
func foldable(t *table) bool {
	keyed := t.rel.ReplicaIdentity == change.IdentityDefault || t.rel.ReplicaIdentity == change.IdentityIndex
	for i, c := range t.rel.Columns {
		if c.Key && keyed {
			t.keyCols = append(t.keyCols, i)
		}
		if t.cols[i].arrayOID == 0 {
			return false
		}
	}
	return !t.identityAlways && !t.fires
}

type targetColInfo struct {
	targetCol
	generated bool
}

// readTargetColumns returns the target table's columns by name, and their
// names in the table's order.
func readTargetColumns(ctx context.Context, conn *pgx.Conn, relOID uint32) (map[string]targetColInfo, []string, error) {
	rows, err := conn.Query(ctx, targetColumnsSQL, relOID)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	have := map[string]targetColInfo{}
	var order []string
	for rows.Next() {
		var name string
		var info targetColInfo
		var arrayOID uint32
		var delim, typeName string
		if err := rows.Scan(&name, &info.typeOID, &info.generated, &info.identityAlways, &info.equality,
			&arrayOID, &delim, &typeName); err != nil {
			return nil, nil, err
		}
		info.arrayOID, info.delim = arrayOID, ','
		if len(delim) == 1 {
			info.delim = delim[0]
		}
		if arrayOID == 0 {
			// An array column (an array of arrays is one multidimensional
			// array, which unnest would flatten), or a composite one: its
			// values go in a text[] and are cast, which reads them with
			// the type's input function.
			info.arrayOID, info.cast, info.delim = textArrayOID, typeName, ','
		} else {
			info.elem = binaryElems[info.typeOID]
		}
		info.quoted = quote.Ident(name)
		have[name] = info
		order = append(order, name)
	}
	return have, order, rows.Err()
}

// textArrayOID is the OID of text[].
const textArrayOID = 1009

// signature identifies a relation announcement by what statements depend
// on: a re-announcement with the same columns reuses the prepared
// statements, one with different columns maps the table again.
func signature(rel *change.Relation) string {
	var b strings.Builder
	b.WriteString(rel.QualifiedName())
	b.WriteByte(rel.ReplicaIdentity)
	for _, c := range rel.Columns {
		b.WriteString(quote.Ident(c.Name))
		if c.Key {
			b.WriteByte('k')
		}
		b.WriteByte(',')
	}
	return b.String()
}
