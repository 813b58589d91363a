package validate

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pglink/pglink/internal/catalog"
)

// task is one unit of work for a job: a group of chunks of a table with a
// key, or a whole table (row counts, or a table without a key).
type task struct {
	table  int
	chunks []chunk // nil: the whole table
	first  int     // index of chunks[0] among the table's chunks
}

// tableState gathers the partial results of one table's tasks.
type tableState struct {
	t        catalog.Table
	cols     []string
	k        keyed
	chunks   []chunk
	keyed    bool
	partials []TableResult // by task, in key order
	left     int           // tasks not finished
	done     int           // chunks finished
	begin    time.Time
	end      time.Time
	progress TableResult
}

// plan cuts the tables into tasks. The chunk boundaries of the tables with
// a key are read from the source by the jobs in parallel.
func plan(ctx context.Context, pool []*sides, o Options, cols map[string][]string) ([]*tableState, []task, error) {
	var states []*tableState
	for _, t := range o.Tables {
		common, ok := cols[t.Key()]
		if !ok {
			continue // not on the target: reported by compareSchema
		}
		st := &tableState{t: t, cols: common}
		if key := tableKey(t); len(key) > 0 && len(common) > 0 && !o.Quick {
			k, err := newKeyed(t, st.cols, key)
			if err != nil {
				return nil, nil, err
			}
			st.k, st.keyed = k, true
		}
		states = append(states, st)
	}
	err := runAll(ctx, pool, len(states), func(ctx context.Context, s *sides, i int) error {
		st := states[i]
		if !st.keyed {
			return nil
		}
		chunks, err := st.k.chunks(ctx, s.src, o.ChunkRows)
		if err != nil {
			return wrapTable(st.t, err)
		}
		st.chunks = chunks
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var tasks []task
	for i, st := range states {
		if !st.keyed {
			tasks = append(tasks, task{table: i})
			st.left = 1
			continue
		}
		for from := 0; from < len(st.chunks); from += chunksPerBatch {
			to := min(from+chunksPerBatch, len(st.chunks))
			tasks = append(tasks, task{table: i, chunks: st.chunks[from:to], first: from})
			st.left++
		}
	}
	return states, tasks, nil
}

// run runs the tasks on the jobs' sessions and folds each table's partial
// results into its TableResult, in key order.
func run(ctx context.Context, pool []*sides, o Options, states []*tableState, tasks []task) ([]TableResult, error) {
	var mu sync.Mutex
	partials := make([]TableResult, len(tasks))
	err := runAll(ctx, pool, len(tasks), func(ctx context.Context, s *sides, i int) error {
		tk := tasks[i]
		st := states[tk.table]
		began := time.Now()
		var res TableResult
		var err error
		if tk.chunks == nil {
			res, err = compareTable(ctx, s, st.t, st.cols, o)
		} else {
			res, err = compareChunkGroup(ctx, s, st.k, tk.chunks, o)
		}
		if err != nil {
			return wrapTable(st.t, err)
		}
		partials[i] = res
		mu.Lock()
		defer mu.Unlock()
		if st.begin.IsZero() || began.Before(st.begin) {
			st.begin = began
		}
		st.end = time.Now()
		st.left--
		st.done += max(len(tk.chunks), 1)
		p := &st.progress
		p.Table, p.Method, p.Chunks = tableName(st.t), res.Method, max(len(st.chunks), res.Chunks)
		p.SourceRows += res.SourceRows
		p.MissingCount += res.MissingCount
		p.ExtraCount += res.ExtraCount
		p.DifferentCount += res.DifferentCount
		o.progress(*p, st.done, st.left == 0)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, tk := range tasks {
		states[tk.table].partials = append(states[tk.table].partials, partials[i])
	}
	out := make([]TableResult, len(states))
	for i, st := range states {
		out[i] = st.fold(o.MaxRows)
	}
	return out, nil
}

// fold sums a table's partial results; the keys listed are the first
// MaxRows in key order.
func (st *tableState) fold(maxRows int) TableResult {
	if !st.keyed {
		r := st.partials[0]
		r.Elapsed = st.end.Sub(st.begin)
		r.Seconds = r.Elapsed.Seconds()
		return r
	}
	r := TableResult{Table: tableName(st.t), Method: MethodChunks, Chunks: len(st.chunks)}
	listed := 0
	take := func(dst *[]string, src []string) {
		for _, k := range src {
			if listed < maxRows {
				*dst = append(*dst, k)
				listed++
			}
		}
	}
	for _, p := range st.partials {
		r.SourceRows += p.SourceRows
		r.TargetRows += p.TargetRows
		r.ChunksDiffering += p.ChunksDiffering
		r.RowsFetched += p.RowsFetched
		r.MissingCount += p.MissingCount
		r.ExtraCount += p.ExtraCount
		r.DifferentCount += p.DifferentCount
		take(&r.Missing, p.Missing)
		take(&r.Extra, p.Extra)
		take(&r.Different, p.Different)
	}
	r.Elapsed = st.end.Sub(st.begin)
	r.Seconds = r.Elapsed.Seconds()
	return r
}

// runAll runs f for 0..n-1 on the jobs, each job on its own sessions, and
// stops at the first error.
func runAll(ctx context.Context, pool []*sides, n int, f func(ctx context.Context, s *sides, i int) error) error {
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range pool {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return nil
				}
				if err := gctx.Err(); err != nil {
					return err
				}
				if err := f(gctx, s, i); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}
