package link

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pglink/pglink/internal/apply"
	"github.com/pglink/pglink/internal/catalog"
	"github.com/pglink/pglink/internal/endpoint"
	"github.com/pglink/pglink/internal/state"
)

// Binary modes of Config.Binary.
const (
	BinaryAuto = "auto" // stream in binary when every linked column's type allows it
	BinaryOff  = "off"  // always stream values as text (the default: see README, Versions)
)

// Stream formats a session uses, as the log and the live view show them.
const (
	formatText   = "text"
	formatBinary = "binary"
)

// firstNormalOID is PostgreSQL's FirstNormalObjectId: types below it are
// built in, with the same OID in every database.
const firstNormalOID = 16384

// linkedTypesSQL lists the types of the published tables' columns on the
// source, with one column of each for the log.
const linkedTypesSQL = `
SELECT DISTINCT ON (t.oid) t.oid, tn.nspname, t.typname, format('%I.%I', pt.schemaname, pt.tablename), a.attname
FROM pg_publication_tables pt
JOIN pg_namespace cn ON cn.nspname = pt.schemaname
JOIN pg_class c ON c.relnamespace = cn.oid AND c.relname = pt.tablename
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_namespace tn ON tn.oid = t.typnamespace
WHERE pt.pubname = $1
ORDER BY t.oid, 4, 5`

type linkedType struct {
	oid                  uint32
	schema, name         string
	table, column        string
	targetSchema, target string // the target's type of that OID; empty when it has none
}

// streamFormat decides, at the start of a replication session, whether
// pgoutput sends values in binary form: only with --binary auto, on a source of
// PostgreSQL 14 or later (pgoutput's binary option), a target of the same
// or a later version (whose receive functions read the source's binary
// forms), and only when every column of every linked table has a built-in
// type, which the target has under the same OID and name. The binary forms
// of user-defined types would reach target types of other OIDs, and those
// of arrays and records embed the OIDs of their elements and fields. Once a
// session ended on a binary value the apply cannot pass (a schema change
// added such a column while it streamed), the process streams in text.
// It returns the format and, for the log, why.
func (r *runner) streamFormat(ctx context.Context, target *pgx.Conn) (string, string, error) {
	switch {
	case r.cfg.Binary != BinaryAuto:
		return formatText, "--binary off", nil
	case r.binaryOff.Load():
		return formatText, "a binary value the apply could not pass ended an earlier session", nil
	}
	var srcVersion, tgtVersion int
	err := state.ControlQuery(ctx, endpoint.Source, "the read of the server version", func(ctx context.Context) (err error) {
		srcVersion, err = catalog.ServerVersion(ctx, r.srcConn)
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("source: %w", err)
	}
	if srcVersion < 140000 {
		return formatText, "the source's pgoutput sends binary values from PostgreSQL 14 on", nil
	}
	err = state.ControlQuery(ctx, endpoint.Target, "the read of the server version", func(ctx context.Context) (err error) {
		tgtVersion, err = catalog.ServerVersion(ctx, target)
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("target: %w", err)
	}
	if tgtVersion/10000 < srcVersion/10000 {
		return formatText, "the target's version is older than the source's", nil
	}
	types, err := r.linkedTypes(ctx, target)
	if err != nil {
		return "", "", err
	}
	for _, t := range types {
		switch {
		case t.oid >= firstNormalOID:
			return formatText, fmt.Sprintf("column %s of %s has the user-defined type %s.%s", t.column, t.table, t.schema, t.name), nil
		case t.target == "":
			return formatText, fmt.Sprintf("the target has no type %s.%s (OID %d) of column %s of %s", t.schema, t.name, t.oid, t.column, t.table), nil
		case t.target != t.name || t.targetSchema != t.schema:
			return formatText, fmt.Sprintf("type OID %d is %s.%s on the source, %s.%s on the target", t.oid, t.schema, t.name, t.targetSchema, t.target), nil
		}
	}
	return formatBinary, "every linked column has a built-in type the target shares", nil
}

// linkedTypes reads the types of the linked columns on the source, and
// what the target has under the same OIDs.
func (r *runner) linkedTypes(ctx context.Context, target *pgx.Conn) ([]linkedType, error) {
	var types []linkedType
	err := state.ControlQuery(ctx, endpoint.Source, "the read of the linked columns' types", func(ctx context.Context) error {
		types = types[:0]
		rows, err := r.srcConn.Query(ctx, linkedTypesSQL, r.names.Publication)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var t linkedType
			if err := rows.Scan(&t.oid, &t.schema, &t.name, &t.table, &t.column); err != nil {
				return err
			}
			types = append(types, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("source: read the types of the linked columns: %w", err)
	}
	oids := make([]uint32, len(types))
	for i, t := range types {
		oids[i] = t.oid
	}
	names := map[uint32][2]string{}
	err = state.ControlQuery(ctx, endpoint.Target, "the read of the linked columns' types", func(ctx context.Context) error {
		rows, err := target.Query(ctx, `SELECT t.oid, n.nspname, t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
			WHERE t.oid = ANY($1::oid[])`, oids)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var oid uint32
			var schema, name string
			if err := rows.Scan(&oid, &schema, &name); err != nil {
				return err
			}
			names[oid] = [2]string{schema, name}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("target: read the types of the linked columns: %w", err)
	}
	for i := range types {
		n := names[types[i].oid]
		types[i].targetSchema, types[i].target = n[0], n[1]
	}
	return types, nil
}

// binaryFallback reports whether err ended a binary session on a value the
// apply could not pass; the process then streams in text from the next
// session on, which starts again from the last applied position at once.
// It says so only once per process: should it come back (it cannot, as no
// value comes in binary form any more), the error is handled as any other,
// with the backoff, so no loop of fast restarts is possible.
func (r *runner) binaryFallback(err error) bool {
	var bv *apply.BinaryValueError
	if !errors.As(err, &bv) || !r.binaryOff.CompareAndSwap(false, true) {
		return false
	}
	r.log.Warn("the source sent a value in binary form that the target cannot take as it is; streaming in text from now on",
		"table", bv.Table, "column", bv.Column, "source_type_oid", bv.TypeOID, "target_type_oid", bv.Target,
		"source_lsn", bv.At.String())
	return true
}
