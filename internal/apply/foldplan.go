package apply

import (
	"slices"
	"strconv"

	"github.com/pglink/pglink/internal/change"
)

// Planning a fold's set-based statements (see bulk.go) is most of the CPU
// they cost pglink: the rows are grouped by the columns they carry and
// every column's values are written out as one array. transport.commit
// plans before it waits for the batch in flight, so that work is done
// while the target is still busy with the previous batch.

// bulkReq is one planned set-based statement: its table, operation and
// columns, and its parameters, ready to send.
type bulkReq struct {
	t    *table
	op   byte
	cols []int
	args [][]byte
	fmts []int16 // per parameter, 1 for an array in binary form; nil when all are text
}

// foldPlan is the set-based statements of a fold, in the order they run.
type foldPlan struct {
	reqs   []bulkReq
	at     change.LSN // CommitLSN of the fold's last change, for errors
	folded bool       // the fold held changes (its statements may still be none: an insert then a delete)
}

// rowGroup is rows that carry the same columns.
type rowGroup struct {
	cols []int
	rows []change.Tuple
}

// grouping collects rows into rowGroups, in order of first appearance.
type grouping struct {
	groups []rowGroup
	index  map[string]int // colsKey of a group's columns -> its place in groups
}

// planFold plans the statements of fold f (empty when it has none).
func (p *planner) planFold(f *fold) foldPlan {
	if f.empty() {
		return foldPlan{}
	}
	plan := foldPlan{at: f.changes[len(f.changes)-1].c.CommitLSN, folded: true}
	for _, tf := range f.order {
		plan.reqs = p.planTableFold(plan.reqs, tf, nil)
	}
	return plan
}

// planTableFold appends the statements of one table's net changes: the
// deletes, then an update per column set, then an insert per column set.
// With a filter, only of the keys it takes.
func (p *planner) planTableFold(reqs []bulkReq, tf *tableFold, only *keyFilter) []bulkReq {
	t := tf.t
	var deletes []change.Tuple
	var updates, inserts grouping
	for _, e := range tf.entries {
		if only != nil && !only.takes(e) {
			continue
		}
		switch {
		case e.existed && e.replaced:
			deletes = append(deletes, e.key)
			if e.exists {
				p.group(&inserts, t, e.image, false)
			}
		case e.existed && e.exists:
			p.group(&updates, t, e.image, true)
		case !e.existed && e.exists:
			p.group(&inserts, t, e.image, false)
		}
	}
	if len(deletes) > 0 {
		reqs = append(reqs, planBulk(t, bulkDelete, t.keyCols, deletes))
	}
	for _, g := range updates.groups {
		reqs = append(reqs, planBulk(t, bulkUpdate, g.cols, g.rows))
	}
	for _, g := range inserts.groups {
		reqs = append(reqs, planBulk(t, bulkInsert, g.cols, g.rows))
	}
	return reqs
}

// group adds image to the group of rows that carry its columns.
func (p *planner) group(g *grouping, t *table, image change.Tuple, update bool) {
	p.colBuf = presentCols(p.colBuf[:0], t, image, update)
	if n := len(g.groups); n > 0 && slices.Equal(g.groups[n-1].cols, p.colBuf) {
		g.groups[n-1].rows = append(g.groups[n-1].rows, image) // most rows carry the columns the last one did
		return
	}
	p.colKey = colsKey(p.colKey[:0], p.colBuf)
	if i, ok := g.index[string(p.colKey)]; ok {
		g.groups[i].rows = append(g.groups[i].rows, image)
		return
	}
	if g.index == nil {
		g.index = map[string]int{}
	}
	g.index[string(p.colKey)] = len(g.groups)
	g.groups = append(g.groups, rowGroup{cols: slices.Clone(p.colBuf), rows: []change.Tuple{image}})
}

// presentCols appends to cols the columns a set-based statement passes for
// image: for an UPDATE the key, then the other columns with a value; for
// an INSERT every column with a value.
func presentCols(cols []int, t *table, image change.Tuple, update bool) []int {
	if update {
		cols = append(cols, t.keyCols...)
	}
	for i, v := range image {
		if v.Kind == change.ValueUnchanged || (update && t.rel.Columns[i].Key) {
			continue
		}
		cols = append(cols, i)
	}
	return cols
}

func colsKey(buf []byte, cols []int) []byte {
	for _, i := range cols {
		buf = append(buf, byte(i), byte(i>>8))
	}
	return buf
}

// planBulk writes the parameters of one set-based statement over rows:
// an array per column, and the number of rows it must change.
func planBulk(t *table, op byte, cols []int, rows []change.Tuple) bulkReq {
	args := make([][]byte, len(cols), len(cols)+1)
	var fmts []int16
	vals := make([]change.Value, len(rows))
	for n, i := range cols {
		for j, row := range rows {
			vals[j] = row[i]
		}
		c := &t.cols[i]
		if anyBinary(vals) {
			// In binary form from the source (all of them: see sameWire).
			if fmts == nil {
				fmts = make([]int16, len(cols)+1)
			}
			args[n], fmts[n] = appendPassedArray(nil, vals, c.typeOID), 1
			continue
		}
		if c.elem != nil {
			if b, ok := appendBinaryArray(nil, vals, c.typeOID, c.elem); ok {
				if fmts == nil {
					fmts = make([]int16, len(cols)+1)
				}
				args[n], fmts[n] = b, 1
				continue
			}
		}
		args[n] = appendArray(nil, vals, c.delim)
	}
	args = append(args, strconv.AppendInt(nil, int64(len(rows)), 10))
	return bulkReq{t: t, op: op, cols: cols, args: args, fmts: fmts}
}

func anyBinary(vals []change.Value) bool {
	for _, v := range vals {
		if v.Kind == change.ValueBinary {
			return true
		}
	}
	return false
}

// appendArray appends the text form of an array of vals to buf: each
// element quoted, NULL for a NULL.
func appendArray(buf []byte, vals []change.Value, delim byte) []byte {
	size := 2
	for _, v := range vals {
		size += len(v.Data) + 3
	}
	buf = slices.Grow(buf, size)
	buf = append(buf, '{')
	for n, v := range vals {
		if n > 0 {
			buf = append(buf, delim)
		}
		if v.Kind == change.ValueNull {
			buf = append(buf, "NULL"...)
			continue
		}
		buf = append(buf, '"')
		for _, b := range v.Data {
			if b == '"' || b == '\\' {
				buf = append(buf, '\\')
			}
			buf = append(buf, b)
		}
		buf = append(buf, '"')
	}
	return append(buf, '}')
}

// planFoldBeside plans fold f's statements in two parts, for a batch that
// starts while prev, the fold of the batch in flight on the other session,
// is not committed yet (commitOnOtherLane): free holds the rows that
// cannot meet prev's (tables prev does not touch, and keys it does not
// touch of tables whose rows of different keys never conflict); after
// holds the rest, to run once prev has committed. Each part keeps the
// fold's order of tables.
func (p *planner) planFoldBeside(f, prev *fold) (free, after foldPlan) {
	if f.empty() {
		return foldPlan{}, foldPlan{}
	}
	at := f.changes[len(f.changes)-1].c.CommitLSN
	free, after = foldPlan{at: at, folded: true}, foldPlan{at: at}
	prevByName := make(map[string]*tableFold, len(prev.order))
	for _, ptf := range prev.order {
		prevByName[ptf.t.key] = ptf
	}
	for _, tf := range f.order {
		ptf, touched := prevByName[tf.t.key]
		switch {
		case !touched:
			free.reqs = p.planTableFold(free.reqs, tf, nil)
		case ptf.t != tf.t || !tf.t.ownKeys:
			// Mapped anew since (its key may differ), or rows of other
			// keys may conflict: all of it waits.
			after.reqs = p.planTableFold(after.reqs, tf, nil)
		case len(tf.t.keyCols) == 0:
			free.reqs = p.planTableFold(free.reqs, tf, nil) // inserts only, and no unique index
		default:
			free.reqs = p.planTableFold(free.reqs, tf, &keyFilter{keys: ptf.keys, in: false})
			after.reqs = p.planTableFold(after.reqs, tf, &keyFilter{keys: ptf.keys, in: true})
		}
	}
	after.folded = len(after.reqs) > 0
	return free, after
}

// keyFilter takes the rows whose key keys holds (in) or does not hold.
type keyFilter struct {
	keys map[string]*netRow
	in   bool
}

func (kf *keyFilter) takes(e *netRow) bool {
	_, ok := kf.keys[e.k]
	return ok == kf.in
}
