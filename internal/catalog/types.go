package catalog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// firstNormalOID is FirstNormalObjectId: OIDs below it are assigned by
// initdb and are the same in every database of every supported version.
const firstNormalOID = 16384

// typeInfo decides, type by type, whether binary COPY output can be read
// by another database. array_recv and record_recv compare the element and
// field type OIDs written by array_send and record_send with their own and
// fail on a difference, so arrays and composites may only embed built-in
// OIDs. A type without send or receive function has no binary form at all.
type typeInfo struct {
	conn  *pgx.Conn
	cache map[uint32]bool
}

func newTypeInfo(conn *pgx.Conn) *typeInfo {
	return &typeInfo{conn: conn, cache: map[uint32]bool{}}
}

type pgType struct {
	oid         uint32
	kind        string // typtype: b, c, d, e, p, r, m
	elem        uint32 // element of an array (typlen -1 and typelem set)
	base        uint32 // domain's base type
	relid       uint32 // composite's pg_class row
	hasBinaryIO bool
	rangeSub    uint32 // range's subtype
}

func (ti *typeInfo) binaryPortable(ctx context.Context, oid uint32, depth int) (bool, error) {
	if ok, found := ti.cache[oid]; found {
		return ok, nil
	}
	if depth > 20 {
		return false, nil
	}
	t, err := ti.load(ctx, oid)
	if err != nil {
		return false, err
	}
	ok, err := ti.decide(ctx, t, depth)
	if err != nil {
		return false, err
	}
	ti.cache[oid] = ok
	return ok, nil
}

func (ti *typeInfo) decide(ctx context.Context, t pgType, depth int) (bool, error) {
	if !t.hasBinaryIO {
		return false, nil
	}
	switch {
	case t.kind == "d":
		return ti.binaryPortable(ctx, t.base, depth+1)
	case t.elem != 0:
		if t.elem >= firstNormalOID {
			return false, nil
		}
		return ti.binaryPortable(ctx, t.elem, depth+1)
	case t.kind == "r":
		return ti.binaryPortable(ctx, t.rangeSub, depth+1)
	case t.kind == "m":
		return ti.multirangePortable(ctx, t, depth)
	case t.kind == "c":
		return ti.compositePortable(ctx, t, depth)
	case t.kind == "p":
		return false, nil
	}
	return true, nil // base types and enums (enum_send writes the label)
}

func (ti *typeInfo) load(ctx context.Context, oid uint32) (pgType, error) {
	t := pgType{oid: oid}
	err := ti.conn.QueryRow(ctx, `
		SELECT t.typtype::text, CASE WHEN t.typlen = -1 THEN t.typelem ELSE 0 END, t.typbasetype, t.typrelid,
		       t.typsend <> 0 AND t.typreceive <> 0,
		       COALESCE((SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = t.oid), 0)
		FROM pg_type t WHERE t.oid = $1`, oid).
		Scan(&t.kind, &t.elem, &t.base, &t.relid, &t.hasBinaryIO, &t.rangeSub)
	if err != nil {
		return t, fmt.Errorf("read type %d: %w", oid, err)
	}
	return t, nil
}

// multirangePortable follows a multirange to its range type. Only
// PostgreSQL 14+ has multiranges, and pg_range.rngmultitypid with them.
func (ti *typeInfo) multirangePortable(ctx context.Context, t pgType, depth int) (bool, error) {
	var rng uint32
	err := ti.conn.QueryRow(ctx, `SELECT rngtypid FROM pg_range WHERE rngmultitypid = $1`, t.oid).Scan(&rng)
	if err != nil {
		return false, fmt.Errorf("read multirange type %d: %w", t.oid, err)
	}
	return ti.binaryPortable(ctx, rng, depth+1)
}

func (ti *typeInfo) compositePortable(ctx context.Context, t pgType, depth int) (bool, error) {
	rows, err := ti.conn.Query(ctx, `SELECT atttypid FROM pg_attribute
		WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, t.relid)
	if err != nil {
		return false, fmt.Errorf("read composite type fields: %w", err)
	}
	fields, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
	if err != nil {
		return false, fmt.Errorf("read composite type fields: %w", err)
	}
	for _, f := range fields {
		if f >= firstNormalOID {
			return false, nil
		}
		ok, err := ti.binaryPortable(ctx, f, depth+1)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}
