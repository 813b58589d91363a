package apply

import (
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/change"
)

// benchRows are n pgbench_accounts updates (aid, bid, abalance, filler)
// as pgoutput sends them in text or in binary form.
func benchRows(n int, bin bool) []change.Tuple {
	filler := []byte(strings.Repeat(" ", 84))
	rows := make([]change.Tuple, n)
	for i := range rows {
		vals := []int32{int32(i + 1), int32(i/100000 + 1), int32(i*7 - 5000)}
		tup := make(change.Tuple, 4)
		for j, v := range vals {
			if bin {
				tup[j] = change.Value{Kind: change.ValueBinary, Data: binary.BigEndian.AppendUint32(nil, uint32(v))}
			} else {
				tup[j] = change.Value{Kind: change.ValueText, Data: strconv.AppendInt(nil, int64(v), 10)}
			}
		}
		kind := change.ValueText
		if bin {
			kind = change.ValueBinary
		}
		tup[3] = change.Value{Kind: kind, Data: filler}
		rows[i] = tup
	}
	return rows
}

func benchTable() *table {
	rel := &change.Relation{Schema: "public", Name: "pgbench_accounts", ReplicaIdentity: change.IdentityDefault,
		Columns: []change.Column{{Name: "aid", TypeOID: 23, Key: true}, {Name: "bid", TypeOID: 23}, {Name: "abalance", TypeOID: 23}, {Name: "filler", TypeOID: 1042}}}
	t := &table{rel: rel, keyCols: []int{0}}
	for _, c := range rel.Columns {
		t.cols = append(t.cols, targetCol{typeOID: c.TypeOID, arrayOID: 1007, elem: binaryElems[c.TypeOID], delim: ',', binaryOK: true})
	}
	t.cols[3].arrayOID = 1014
	return t
}

// BenchmarkPlanBulk measures what pglink spends on the parameters of a
// set-based UPDATE of 1000 rows: values in text form encoded into binary
// arrays (binarray.go), or values in binary form passed as they came.
func BenchmarkPlanBulk(b *testing.B) {
	for _, form := range []string{"text", "binary"} {
		b.Run(form, func(b *testing.B) {
			t, rows := benchTable(), benchRows(1000, form == "binary")
			b.ReportAllocs()
			for b.Loop() {
				req := planBulk(t, bulkUpdate, []int{0, 1, 2, 3}, rows)
				if req.fmts == nil {
					b.Fatal("not in binary form")
				}
			}
		})
	}
}
