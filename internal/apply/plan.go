package apply

import (
	"github.com/pglink/pglink/internal/change"
)

// planner is what the apply knows of the target's tables: each announced
// relation mapped to its table once, and the statements built for it,
// kept on the table and reused for every change of the same shape. The
// transport sends what it plans; the planner never talks to the target.
type planner struct {
	tables  map[*change.Relation]*table
	bySig   map[string]*table
	stmtKey []byte // rowStmt's scratch: a row statement's key
	bulkKey []byte // bulkStmt's scratch: a set-based statement's key
	colBuf  []int  // planFold's scratch: a row's columns
	colKey  []byte // planFold's scratch: their key
}

func newPlanner() *planner {
	return &planner{tables: map[*change.Relation]*table{}, bySig: map[string]*table{}}
}

// maxMappedRelations bounds the map from announced relations to tables:
// the stream makes a new Relation for every announcement, and a long run
// sees many. Forgetting them costs one signature lookup each.
const maxMappedRelations = 10000

// known returns rel's table when rel, or an earlier announcement with the
// same signature, is mapped already.
func (p *planner) known(rel *change.Relation) (*table, bool) {
	if t, ok := p.tables[rel]; ok {
		return t, true
	}
	t, ok := p.bySig[signature(rel)]
	if ok {
		p.remember(rel, t)
	}
	return t, ok
}

// forget drops every mapping and the statements built for them: after a
// schema change the target's tables are read again at their next change.
func (p *planner) forget() {
	clear(p.tables)
	clear(p.bySig)
}

// add maps rel to t, read from the target's catalog for it.
func (p *planner) add(rel *change.Relation, t *table) {
	p.bySig[signature(rel)] = t
	p.remember(rel, t)
}

func (p *planner) remember(rel *change.Relation, t *table) {
	if len(p.tables) >= maxMappedRelations {
		clear(p.tables)
	}
	p.tables[rel] = t
}

// rowStmt returns t's row statement of shape s on the session of lane
// (a statement is prepared on one session). fresh says it was just built:
// the caller must prepare it, under key.
func (p *planner) rowStmt(lane int, t *table, s *shape) (st *stmt, key string, fresh bool) {
	p.stmtKey = s.key(append(p.stmtKey[:0], byte(lane)))
	if st, ok := t.stmts[string(p.stmtKey)]; ok {
		return st, "", false
	}
	key = string(p.stmtKey)
	st = buildStmt(t, s)
	t.stmts[key] = st
	return st, key, true
}

// bulkStmt is rowStmt for the set-based statement of req.
func (p *planner) bulkStmt(lane int, req *bulkReq) (st *stmt, key string, fresh bool) {
	t := req.t
	p.bulkKey = colsKey(append(p.bulkKey[:0], byte(lane), req.op), req.cols)
	if st, ok := t.bulk[string(p.bulkKey)]; ok {
		return st, "", false
	}
	key = string(p.bulkKey)
	st = buildBulk(t, req.op, req.cols)
	t.bulk[key] = st
	return st, key, true
}
