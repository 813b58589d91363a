package apply

import (
	"fmt"
	"strings"
)

// Set-based statements of a fold (see fold.go): per table, one DELETE of
// the keys to remove, one UPDATE per set of columns the updated rows
// carry, one INSERT per set of columns the new rows carry, in that order.
// The rows travel as one array parameter per column: for common built-in
// types in binary form when pglink can read every value's text exactly
// (see binarray.go), else in the text form of the column type's array, so
// each value is read by the column type's input function, as the
// row-by-row statements read their parameters.

// Set-based operations.
const (
	bulkDelete byte = 'd'
	bulkUpdate byte = 'u'
	bulkInsert byte = 'i'
)

// bulkSavepoint is taken before the set-based statements of a flush: the
// fallback rolls back to it.
const bulkSavepoint = "pglink_fold"

// bulkError is the failure of a set-based statement or its preparation;
// the changes of the flush are then applied one by one. A set-based
// statement that changes another number of rows than it names fails too:
// it divides by zero (see buildBulk).
type bulkError struct {
	err  error
	tbl  *table
	prep string // the statement key, when its preparation failed
}

func (e *bulkError) Error() string { return e.err.Error() }
func (e *bulkError) Unwrap() error { return e.err }

// buildBulk writes the set-based statement op of t over cols: the rows come
// from unnest of one array per column, named pglink_v.c1, c2, ... The
// unnests are in a select list, where they advance in step, rather than
// in FROM, where unnest of several arrays first copies every row into a
// tuplestore.
func buildBulk(t *table, op byte, cols []int) *stmt {
	st := &stmt{setCols: append([]int(nil), cols...)}
	for _, i := range cols {
		st.paramOIDs = append(st.paramOIDs, t.cols[i].arrayOID)
	}
	st.paramOIDs = append(st.paramOIDs, 20) // the rows it must change
	val := func(n int) string {
		s := fmt.Sprintf("pglink_v.c%d", n+1)
		if c := t.cols[cols[n]].cast; c != "" {
			s += "::" + c
		}
		return s
	}
	var from strings.Builder
	from.WriteString("(SELECT ")
	for n := range cols {
		if n > 0 {
			from.WriteString(", ")
		}
		fmt.Fprintf(&from, "unnest($%d) AS c%d", n+1, n+1)
	}
	from.WriteString(") AS pglink_v")
	where := func(b *strings.Builder) {
		b.WriteString(" WHERE ")
		for n := range t.keyCols {
			if n > 0 {
				b.WriteString(" AND ")
			}
			fmt.Fprintf(b, "pglink_t.%s = %s", t.cols[cols[n]].quoted, val(n))
		}
	}
	var b strings.Builder
	switch op {
	case bulkDelete:
		fmt.Fprintf(&b, "WITH pglink_w AS (DELETE FROM %s%s AS pglink_t USING %s", only(t), t.quoted, from.String())
		where(&b)
	case bulkUpdate:
		fmt.Fprintf(&b, "WITH pglink_w AS (UPDATE %s%s AS pglink_t SET ", only(t), t.quoted)
		for n := len(t.keyCols); n < len(cols); n++ {
			if n > len(t.keyCols) {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s = %s", t.cols[cols[n]].quoted, val(n))
		}
		b.WriteString(" FROM " + from.String())
		where(&b)
	case bulkInsert:
		fmt.Fprintf(&b, "WITH pglink_w AS (INSERT INTO %s (", t.quoted)
		for n, i := range cols {
			if n > 0 {
				b.WriteString(", ")
			}
			b.WriteString(t.cols[i].quoted)
		}
		b.WriteString(") SELECT ")
		for n := range cols {
			if n > 0 {
				b.WriteString(", ")
			}
			b.WriteString(val(n))
		}
		b.WriteString(" FROM " + from.String())
	}
	// Each named row must be changed (found, for an UPDATE or DELETE):
	// when one is not, the statement fails (division by zero) and the
	// server skips what follows, the batch's COMMIT included, so the
	// fallback can take over. A count checked by pglink after the fact
	// would come too late: what follows would already have run.
	fmt.Fprintf(&b, " RETURNING 1) SELECT 1 / (count(*) = $%d)::int FROM pglink_w", len(cols)+1)
	st.sql = b.String()
	return st
}
