package apply

import (
	"github.com/pglink/pglink/internal/change"
)

// Set-based apply. Within one target transaction (a batch of source
// transactions), the row changes of a foldable table are folded per key
// into their net effect and applied with a few statements per table (see
// bulk.go) instead of one statement per change: an insert followed by
// updates becomes one insert of the last image, updates become one update
// to the last image, an insert then a delete nothing, a delete then an
// insert a delete and an insert, and an update that changes the key a
// delete of the old key and an insert of the new.
//
// Folding assumes what a consistent source guarantees: an INSERT finds no
// row with its key, an UPDATE or DELETE finds its row. A change that
// contradicts what the fold already holds for its key (an update of a row
// the fold deleted, say) flushes the fold first and starts a new one. The
// bulk statements check the assumptions: each must change exactly the rows
// it names, and a failure of any kind (a row that is not there, a unique
// violation on a secondary index, a check) rolls back to a savepoint taken
// before them and applies the same changes one by one, so the outcome, the
// counted conflicts and the errors are exactly those of row-by-row apply.
//
// Tables do not see each other in the apply session (replica role: no
// foreign key checks, no user triggers), so changes of other tables may go
// ahead of a table's folded ones; a table whose triggers or rules fire
// anyway flushes the fold before each of its changes.

// Fold bounds: a huge source transaction is applied in sets of at most
// this many changes or bytes of values, the batch still one transaction.
const (
	foldMaxChanges = 20000
	foldMaxBytes   = 16 << 20
)

// folded is one change taken into the fold, kept with its shape to apply
// it row by row when the set-based statements fail.
type folded struct {
	t     *table
	c     *change.Change
	shape shape        // its columns are in the fold's cols
	where change.Tuple // the tuple that identifies its row (shapeOf)
}

// fold is the folded net effect of the changes since the last flush.
type fold struct {
	tables  map[*table]*tableFold
	order   []*tableFold // by first change, so statements go out in a stable order
	changes []folded
	cols    []int // the columns of the changes' shapes, one after the other
	bytes   int
}

// tableFold is the net effect on one table, per key.
type tableFold struct {
	t       *table
	keys    map[string]*netRow
	entries []*netRow // in order of first change
}

// netRow is the net effect on one key. existed says whether the row is
// assumed there before the fold (its first change was an UPDATE or a
// DELETE), exists whether it is there after, replaced whether it was
// deleted in between (so it must be deleted, and inserted anew if it
// exists). image is the row's last image while it exists; it holds
// ValueUnchanged only for columns no change of the fold has set.
type netRow struct {
	seen, existed, exists, replaced bool
	k                               string       // the key, as rowKey writes it (the entry's key in tableFold.keys)
	key                             change.Tuple // the identifying tuple: its key columns hold the key
	image                           change.Tuple
}

func (f *fold) empty() bool { return len(f.changes) == 0 }

func (f *fold) full() bool {
	return len(f.changes) >= foldMaxChanges || f.bytes >= foldMaxBytes
}

func (f *fold) reset() {
	clear(f.tables)
	clear(f.order)
	f.order = f.order[:0]
	clear(f.changes)
	f.changes, f.cols, f.bytes = f.changes[:0], f.cols[:0], 0
}

func (f *fold) table(t *table) *tableFold {
	if f.tables == nil {
		f.tables = map[*table]*tableFold{}
	}
	tf, ok := f.tables[t]
	if !ok {
		tf = &tableFold{t: t, keys: map[string]*netRow{}}
		f.tables[t] = tf
		f.order = append(f.order, tf)
	}
	return tf
}

// foldResult says what add did with a change.
type foldResult uint8

const (
	foldTaken   foldResult = iota // taken into the fold
	conflicting                   // contradicts the fold: flush it, then add again
	unfoldable                    // apply it row by row (after flushing the fold)
)

// add folds change c of table t, of shape s identified by where, or says
// why it cannot.
func (f *fold) add(t *table, c *change.Change, s *shape, where change.Tuple, keyBuf []byte) (foldResult, []byte) {
	if !sameWire(t, c.New) || !sameWire(t, c.Old) {
		return unfoldable, keyBuf
	}
	var tf *tableFold
	if f.tables != nil {
		tf = f.tables[t]
	}
	lookup := func(tup change.Tuple) (*netRow, string) {
		keyBuf = rowKey(keyBuf[:0], t, tup)
		if tf == nil {
			return nil, string(keyBuf)
		}
		return tf.keys[string(keyBuf)], string(keyBuf)
	}
	if len(t.keyCols) == 0 {
		// Without a key, rows are inserted as they come; an update or a
		// delete goes row by row after them.
		if c.Kind != change.Insert || len(c.New) != len(t.cols) || hasUnchanged(c.New, nil) {
			return unfoldable, keyBuf
		}
		tf := f.table(t)
		tf.entries = append(tf.entries, &netRow{seen: true, exists: true, image: c.New})
		f.keep(t, c, s, where)
		return foldTaken, keyBuf
	}
	switch c.Kind {
	case change.Insert:
		if len(c.New) != len(t.cols) || hasUnchanged(c.New, t.keyCols) {
			return unfoldable, keyBuf
		}
		e, k := lookup(c.New)
		if e != nil && e.exists {
			return conflicting, keyBuf
		}
		f.put(t, e, k, c.New).insert(c.New)
	case change.Delete:
		if len(c.Old) != len(t.cols) || hasUnchanged(c.Old, t.keyCols) {
			return unfoldable, keyBuf
		}
		e, k := lookup(c.Old)
		if e != nil && !e.exists {
			return conflicting, keyBuf
		}
		f.put(t, e, k, c.Old).delete()
	case change.Update:
		if len(c.New) != len(t.cols) || hasUnchanged(c.New, t.keyCols) ||
			(c.Old != nil && (len(c.Old) != len(t.cols) || hasUnchanged(c.Old, t.keyCols))) {
			return unfoldable, keyBuf
		}
		if c.Old != nil && !sameKey(t, c.Old, c.New) {
			return f.moveKey(t, c, s, where, keyBuf)
		}
		e, k := lookup(c.New)
		if e == nil && !setsNonKey(t, c.New) {
			return unfoldable, keyBuf // only checks that the row is there
		}
		if e != nil && !e.exists {
			return conflicting, keyBuf
		}
		f.put(t, e, k, c.New).update(c.New)
	default:
		return unfoldable, keyBuf
	}
	f.keep(t, c, s, where)
	return foldTaken, keyBuf
}

// moveKey folds an UPDATE that changes the key: a delete of the old key
// and an insert of the new. Unchanged TOASTed values of the new row are
// taken from the old row's image, which the fold must hold; a target table
// with columns of its own (which an UPDATE keeps and an insert would not)
// is updated row by row.
func (f *fold) moveKey(t *table, c *change.Change, s *shape, where change.Tuple, keyBuf []byte) (foldResult, []byte) {
	if len(t.extra) > 0 {
		return unfoldable, keyBuf
	}
	tf := f.table(t)
	keyBuf = rowKey(keyBuf[:0], t, c.Old)
	oldKey := string(keyBuf)
	keyBuf = rowKey(keyBuf[:0], t, c.New)
	newKey := string(keyBuf)
	eo, en := tf.keys[oldKey], tf.keys[newKey]
	if (eo != nil && !eo.exists) || (en != nil && en.exists) {
		return conflicting, keyBuf
	}
	image := c.New
	if hasUnchanged(c.New, nil) {
		if eo == nil {
			return unfoldable, keyBuf
		}
		image = merge(eo.image, c.New)
		if hasUnchanged(image, nil) {
			return unfoldable, keyBuf
		}
	}
	f.put(t, eo, oldKey, c.Old).delete()
	f.put(t, en, newKey, image).insert(image)
	f.keep(t, c, s, where)
	return foldTaken, keyBuf
}

// put returns e, or a new entry for key k whose identifying tuple is key.
func (f *fold) put(t *table, e *netRow, k string, key change.Tuple) *netRow {
	if e != nil {
		return e
	}
	tf := f.table(t)
	e = &netRow{k: k, key: key}
	tf.keys[k] = e
	tf.entries = append(tf.entries, e)
	return e
}

// keep records c for the row-by-row fallback, with a copy of its shape s.
// The copy's columns go to f.cols: a slice of it stays valid when f.cols
// grows, and until reset.
func (f *fold) keep(t *table, c *change.Change, s *shape, where change.Tuple) {
	n, m := len(f.cols), len(f.cols)+len(s.setCols)
	f.cols = append(append(f.cols, s.setCols...), s.whereCols...)
	own := shape{kind: s.kind, setCols: f.cols[n:m:m], whereCols: f.cols[m:len(f.cols):len(f.cols)], fullRow: s.fullRow}
	f.changes = append(f.changes, folded{t: t, c: c, shape: own, where: where})
	f.bytes += 64 + tupleBytes(c.New) + tupleBytes(c.Old)
}

func (e *netRow) insert(image change.Tuple) {
	if !e.seen { // first change of the key: the row is assumed absent
		e.seen = true
	}
	e.exists, e.image = true, image
}

func (e *netRow) delete() {
	if !e.seen { // first change of the key: the row is assumed there
		e.seen, e.existed = true, true
	}
	e.replaced = e.replaced || e.existed
	e.exists, e.image = false, nil
}

func (e *netRow) update(n change.Tuple) {
	if !e.seen { // first change of the key: the row is assumed there
		e.seen, e.existed, e.exists, e.image = true, true, true, n
		return
	}
	e.image = merge(e.image, n)
}

// merge returns the image after an update to n: n's values, and old's
// where n leaves a value unchanged. It never changes old or n.
func merge(old, n change.Tuple) change.Tuple {
	if !hasUnchanged(n, nil) {
		return n
	}
	out := make(change.Tuple, len(n))
	for i, v := range n {
		if v.Kind == change.ValueUnchanged && old != nil {
			v = old[i]
		}
		out[i] = v
	}
	return out
}

// rowKey appends the key of tup (its key columns) to buf.
func rowKey(buf []byte, t *table, tup change.Tuple) []byte {
	for _, i := range t.keyCols {
		v := tup[i]
		buf = append(buf, v.Kind, byte(len(v.Data)>>24), byte(len(v.Data)>>16), byte(len(v.Data)>>8), byte(len(v.Data)))
		buf = append(buf, v.Data...)
	}
	return buf
}

func sameKey(t *table, a, b change.Tuple) bool {
	for _, i := range t.keyCols {
		if a[i].Kind != b[i].Kind || string(a[i].Data) != string(b[i].Data) {
			return false
		}
	}
	return true
}

// setsNonKey reports whether an update to n sets a column outside the key.
func setsNonKey(t *table, n change.Tuple) bool {
	for i, v := range n {
		if v.Kind != change.ValueUnchanged && !t.rel.Columns[i].Key {
			return true
		}
	}
	return false
}

// hasUnchanged reports whether tup leaves a value unchanged, among cols
// (every column when cols is nil).
func hasUnchanged(tup change.Tuple, cols []int) bool {
	if cols == nil {
		for _, v := range tup {
			if v.Kind == change.ValueUnchanged {
				return true
			}
		}
		return false
	}
	for _, i := range cols {
		if tup[i].Kind == change.ValueUnchanged {
			return true
		}
	}
	return false
}

func tupleBytes(tup change.Tuple) int {
	n := 0
	for _, v := range tup {
		n += len(v.Data) + 8
	}
	return n
}
