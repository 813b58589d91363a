package apply

import (
	"fmt"
	"strings"

	"github.com/pglink/pglink/internal/change"
)

// stmt is one prepared row statement: a table, an operation and the set of
// columns present in the change. Its parameters are the set (or insert)
// columns' values taken from New, then the where columns' values taken
// from the identifying tuple.
type stmt struct {
	name      string // prepared statement name; empty until sent
	sql       string
	paramOIDs []uint32
	setCols   []int // indexes into the tuple: INSERT values or UPDATE SET
	whereCols []int // indexes into the identifying tuple
	fullRow   bool  // WHERE matches a whole old row (REPLICA IDENTITY FULL)
}

// shape says which statement a row change needs. The statement depends on
// which columns carry a value: pgoutput leaves out unchanged TOASTed values
// (ValueUnchanged), and those columns must keep what the target has.
type shape struct {
	kind      change.Kind
	setCols   []int
	whereCols []int
	fullRow   bool
}

// shapeOf returns the shape of row change c of table t, with the tuple
// that identifies the row to change (nil for INSERT). It reuses s's slices.
func shapeOf(s *shape, t *table, c *change.Change) (where change.Tuple, err error) {
	s.kind, s.setCols, s.whereCols = c.Kind, s.setCols[:0], s.whereCols[:0]
	s.fullRow = t.rel.ReplicaIdentity == change.IdentityFull
	if c.Kind == change.Insert || c.Kind == change.Update {
		if len(c.New) != len(t.cols) {
			return nil, fmt.Errorf("new row has %d values, relation has %d columns", len(c.New), len(t.cols))
		}
		for i, v := range c.New {
			if v.Kind != change.ValueUnchanged {
				s.setCols = append(s.setCols, i)
			}
		}
	}
	if c.Kind == change.Insert {
		return nil, nil
	}
	where = c.Old
	if where == nil {
		if c.Kind == change.Delete || s.fullRow {
			return nil, fmt.Errorf("no old row to identify the row by (replica identity %q)", t.rel.ReplicaIdentity)
		}
		where = c.New
	}
	if len(where) != len(t.cols) {
		return nil, fmt.Errorf("old row has %d values, relation has %d columns", len(where), len(t.cols))
	}
	for i, col := range t.rel.Columns {
		if (s.fullRow || col.Key) && where[i].Kind != change.ValueUnchanged {
			s.whereCols = append(s.whereCols, i)
		}
	}
	if len(s.whereCols) == 0 {
		return nil, fmt.Errorf("no key columns to identify the row by: give the source table a primary key or REPLICA IDENTITY FULL")
	}
	if c.Kind == change.Update && t.identityAlways {
		s.setCols = withoutUnchangedIdentity(s.setCols, t, c, s.fullRow)
	}
	return where, nil
}

// withoutUnchangedIdentity drops from an UPDATE's SET list the GENERATED
// ALWAYS identity columns whose value is known not to change, which an
// UPDATE may not name: a key column when there is no old tuple (the key
// did not change, its new value is the WHERE value), and a column the old
// tuple carries (a key column, or any with REPLICA IDENTITY FULL) with the
// same value. Only an identity column that changes, or whose old value is
// unknown, is left, and makes the UPDATE move the row (buildMoveUpdate).
func withoutUnchangedIdentity(set []int, t *table, c *change.Change, fullRow bool) []int {
	out := set[:0]
	for _, i := range set {
		known := t.rel.Columns[i].Key || fullRow
		same := false
		if t.cols[i].identityAlways && known {
			if c.Old == nil {
				same = true
			} else {
				o, n := c.Old[i], c.New[i]
				same = o.Kind == n.Kind && o.Kind != change.ValueUnchanged && string(o.Data) == string(n.Data)
			}
		}
		if !same {
			out = append(out, i)
		}
	}
	return out
}

// setsIdentityAlways reports whether an UPDATE would set a GENERATED ALWAYS
// identity column, which PostgreSQL refuses.
func setsIdentityAlways(t *table, set []int) bool {
	for _, i := range set {
		if t.cols[i].identityAlways {
			return true
		}
	}
	return false
}

// key returns the statement cache key of s, appended to buf.
func (s *shape) key(buf []byte) []byte {
	buf = append(buf, byte(s.kind))
	for _, i := range s.setCols {
		buf = append(buf, byte(i), byte(i>>8))
	}
	buf = append(buf, 0xff, 0xff)
	for _, i := range s.whereCols {
		buf = append(buf, byte(i), byte(i>>8))
	}
	return buf
}

// buildStmt writes the SQL of shape s on table t. It is kept apart from the
// apply loop so set-based statements can be built the same way later.
func buildStmt(t *table, s *shape) *stmt {
	st := &stmt{setCols: append([]int(nil), s.setCols...), whereCols: append([]int(nil), s.whereCols...), fullRow: s.fullRow}
	for _, i := range st.setCols {
		st.paramOIDs = append(st.paramOIDs, t.cols[i].typeOID)
	}
	for _, i := range st.whereCols {
		st.paramOIDs = append(st.paramOIDs, t.cols[i].typeOID)
	}
	var b strings.Builder
	switch s.kind {
	case change.Insert:
		buildInsert(&b, t, st)
	case change.Update:
		if len(st.setCols) == 0 {
			// Only the unchanged key was left: check that the row exists.
			fmt.Fprintf(&b, "SELECT 1 FROM %s%s", only(t), t.quoted)
			buildWhere(&b, t, st, 1)
			break
		}
		if setsIdentityAlways(t, st.setCols) {
			buildMoveUpdate(&b, t, st)
			break
		}
		fmt.Fprintf(&b, "UPDATE %s%s SET ", only(t), t.quoted)
		for n, i := range st.setCols {
			if n > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s = $%d", t.cols[i].quoted, n+1)
		}
		buildWhere(&b, t, st, len(st.setCols)+1)
	case change.Delete:
		fmt.Fprintf(&b, "DELETE FROM %s%s", only(t), t.quoted)
		buildWhere(&b, t, st, 1)
	}
	st.sql = b.String()
	return st
}

// buildMoveUpdate writes an UPDATE that changes a GENERATED ALWAYS
// identity column as one statement that deletes the old row and inserts the
// new one with OVERRIDING SYSTEM VALUE, taking unchanged (TOASTed) values,
// and the target's own columns the source does not send, from the deleted
// row. Columns are named, so the target's column order does not matter; a
// partitioned table is written through its root, which routes the new row.
// The command tag (INSERT 0 n) still counts the rows changed. Triggers,
// foreign keys included, do not fire in the apply session (replica role),
// so the delete cascades nowhere.
func buildMoveUpdate(b *strings.Builder, t *table, st *stmt) {
	fmt.Fprintf(b, "WITH d AS (DELETE FROM %s%s", only(t), t.quoted)
	buildWhere(b, t, st, len(st.setCols)+1)
	b.WriteString(" RETURNING *) INSERT INTO " + t.quoted + " (")
	for i, c := range t.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.quoted)
	}
	for _, q := range t.extra {
		b.WriteString(", " + q)
	}
	b.WriteString(") OVERRIDING SYSTEM VALUE SELECT ")
	param := map[int]int{}
	for n, i := range st.setCols {
		param[i] = n + 1
	}
	for i, c := range t.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		if n, ok := param[i]; ok {
			fmt.Fprintf(b, "$%d", n)
		} else {
			b.WriteString("d." + c.quoted)
		}
	}
	for _, q := range t.extra {
		b.WriteString(", d." + q)
	}
	b.WriteString(" FROM d")
}

func buildInsert(b *strings.Builder, t *table, st *stmt) {
	fmt.Fprintf(b, "INSERT INTO %s ", t.quoted)
	if len(st.setCols) == 0 {
		b.WriteString("DEFAULT VALUES")
		return
	}
	b.WriteByte('(')
	for n, i := range st.setCols {
		if n > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.cols[i].quoted)
	}
	b.WriteString(") ")
	if t.identityAlways {
		b.WriteString("OVERRIDING SYSTEM VALUE ")
	}
	b.WriteString("VALUES (")
	for n := range st.setCols {
		if n > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "$%d", n+1)
	}
	b.WriteByte(')')
}

// buildWhere identifies the row. With a key, = on the key columns (key
// types always have equality: the key is a btree unique index). With the
// whole old row (REPLICA IDENTITY FULL) the table may hold duplicates, and
// native apply changes exactly one of them: so does the ctid subquery.
// NULLs match with IS NOT DISTINCT FROM; types without equality compare
// their text output on the target, both sides through the same type.
func buildWhere(b *strings.Builder, t *table, st *stmt, firstParam int) {
	b.WriteString(" WHERE ")
	if !st.fullRow {
		for n, i := range st.whereCols {
			if n > 0 {
				b.WriteString(" AND ")
			}
			fmt.Fprintf(b, "%s = $%d", t.cols[i].quoted, firstParam+n)
		}
		return
	}
	// A partitioned table's ctid is unique only within one partition.
	rowID, selected := "ctid", "ctid"
	if t.partitioned {
		rowID, selected = "(tableoid, ctid)", "tableoid, ctid"
	}
	fmt.Fprintf(b, "%s = (SELECT %s FROM %s%s WHERE ", rowID, selected, only(t), t.quoted)
	for n, i := range st.whereCols {
		if n > 0 {
			b.WriteString(" AND ")
		}
		if t.cols[i].equality {
			fmt.Fprintf(b, "%s IS NOT DISTINCT FROM $%d", t.cols[i].quoted, firstParam+n)
		} else {
			fmt.Fprintf(b, "%s::text IS NOT DISTINCT FROM $%d::text", t.cols[i].quoted, firstParam+n)
		}
	}
	b.WriteString(" LIMIT 1)")
}

// only keeps UPDATE, DELETE and TRUNCATE of a plain table off its
// inheritance children, which the source publishes (and sends) on their
// own, as native apply does. A partitioned table is written through its
// root (publish_via_partition_root), where ONLY would match nothing.
func only(t *table) string {
	if t.partitioned {
		return ""
	}
	return "ONLY "
}

// truncateSQL truncates tables in one statement, so foreign keys between
// them do not stop it, with the source's CASCADE and RESTART IDENTITY.
func truncateSQL(tables []*table, cascade, restartIdentity bool) string {
	var b strings.Builder
	b.WriteString("TRUNCATE ")
	for n, t := range tables {
		if n > 0 {
			b.WriteString(", ")
		}
		b.WriteString(only(t) + t.quoted)
	}
	if restartIdentity {
		b.WriteString(" RESTART IDENTITY")
	}
	if cascade {
		b.WriteString(" CASCADE")
	}
	return b.String()
}

// params fills buf with the parameter values of c for st: the raw text
// from pgoutput, nil for NULL. It returns formats too when a value came in
// binary form (nil means all text).
func params(buf [][]byte, fmts []int16, st *stmt, c *change.Change, where change.Tuple) ([][]byte, []int16) {
	buf, fmts = buf[:0], fmts[:0]
	binary := false
	add := func(v change.Value) {
		switch v.Kind {
		case change.ValueNull:
			buf = append(buf, nil)
		case change.ValueBinary:
			binary = true
			buf = append(buf, v.Data)
		default:
			if v.Data == nil { // an empty string, not NULL
				buf = append(buf, []byte{})
				break
			}
			buf = append(buf, v.Data)
		}
		fmts = append(fmts, formatOf(v.Kind))
	}
	for _, i := range st.setCols {
		add(c.New[i])
	}
	for _, i := range st.whereCols {
		add(where[i])
	}
	if !binary {
		fmts = fmts[:0]
	}
	return buf, fmts
}

func formatOf(kind byte) int16 {
	if kind == change.ValueBinary {
		return 1
	}
	return 0
}
