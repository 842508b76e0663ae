package tensor

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// parallelMinWork is the number of multiply-adds below which a product runs
// on the calling goroutine: starting goroutines costs more than it saves.
// It affects speed only; results are identical either way.
const parallelMinWork = 1 << 18

var rowBufs = sync.Pool{New: func() any { return new([]float32) }}

func getBuf(n int) *[]float32 {
	p := rowBufs.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

// MatMul computes out[t*w.Rows+r] = Dot(row r of w, x[t*w.Cols:(t+1)*w.Cols])
// for the n vectors in x, using up to threads goroutines. Rows are split into
// fixed contiguous ranges and each row is computed by one goroutine in the
// canonical order, so the result is bit-identical for any thread count.
func MatMul(out []float32, w *Mat, x []float32, n, threads int) error {
	if err := checkMatMul(out, w, x, n); err != nil {
		return err
	}
	ParallelFor(w.Rows, threads, w.Cols*n, func(lo, hi int) {
		matMulRows(out, w, x, n, lo, hi)
	})
	return nil
}

// MatMulMulti computes MatMul(outs[i], ws[i], x, n, threads) for every i in
// one parallel pass: the rows of all matrices are split as one range, so the
// small matrices of a decode step (q, k, v; gate, up) share one dispatch and
// the threads stay balanced. Results are those of separate MatMul calls.
// Every matrix must have the same column count.
func MatMulMulti(outs [][]float32, ws []*Mat, x []float32, n, threads int) error {
	if len(outs) != len(ws) || len(ws) == 0 {
		return fmt.Errorf("tensor: matmul of %d matrices into %d outputs", len(ws), len(outs))
	}
	total := 0
	for i, w := range ws {
		if w.Cols != ws[0].Cols {
			return fmt.Errorf("tensor: matmul of matrices with %d and %d columns", ws[0].Cols, w.Cols)
		}
		if err := checkMatMul(outs[i], w, x, n); err != nil {
			return err
		}
		total += w.Rows
	}
	ParallelFor(total, threads, ws[0].Cols*n, func(lo, hi int) {
		base := 0
		for i, w := range ws {
			if a, b := max(lo, base), min(hi, base+w.Rows); a < b {
				matMulRows(outs[i], w, x, n, a-base, b-base)
			}
			base += w.Rows
		}
	})
	return nil
}

// MatMulRange computes rows [lo, hi) of MatMul(out, w, x, n, ·) on the
// calling goroutine, for callers that split a product themselves with
// ParallelFor and fuse their own work into each range.
func MatMulRange(out []float32, w *Mat, x []float32, n, lo, hi int) error {
	if err := checkMatMul(out, w, x, n); err != nil {
		return err
	}
	if lo < 0 || hi > w.Rows || lo > hi {
		return fmt.Errorf("tensor: matmul rows [%d,%d) of a %d-row matrix", lo, hi, w.Rows)
	}
	if lo < hi {
		matMulRows(out, w, x, n, lo, hi)
	}
	return nil
}

// checkMatMul reports whether out and x fit n products with w.
func checkMatMul(out []float32, w *Mat, x []float32, n int) error {
	if n <= 0 || len(x) < n*w.Cols || len(out) < n*w.Rows {
		return fmt.Errorf("tensor: matmul %d×%d with %d vectors: x has %d, out has %d", w.Rows, w.Cols, n, len(x), len(out))
	}
	return nil
}

// rowTile is the number of rows a kernel call covers, so that the rows stay
// in cache while every vector of a batch passes over them.
const rowTile = 32

func matMulRows(out []float32, w *Mat, x []float32, n, lo, hi int) {
	cols, rows := w.Cols, w.Rows
	if hasKernel(w) {
		for r0 := lo; r0 < hi; r0 += rowTile {
			r1 := min(r0+rowTile, hi)
			for t := 0; t < n; t++ {
				matVecRows(out[t*rows+r0:t*rows+r1], w, x[t*cols:(t+1)*cols], r0, r1)
			}
		}
		return
	}
	var bp *[]float32
	var buf []float32
	if w.f32 == nil {
		bp = getBuf(w.Cols)
		buf = *bp
	}
	for r := lo; r < hi; r++ {
		row := w.rowF32(buf, r)
		for t := 0; t < n; t++ {
			out[t*rows+r] = Dot(row, x[t*cols:(t+1)*cols])
		}
	}
	if bp != nil {
		rowBufs.Put(bp)
	}
}

// ParallelFor splits [0, items) into at most threads contiguous ranges of
// equal size (the last may be shorter) and runs fn on each, the first on the
// calling goroutine and the others on the package's worker goroutines.
// costPerItem estimates the work per item; small jobs run serially. fn must
// not call ParallelFor: the pool's workers would wait on each other.
func ParallelFor(items, threads, costPerItem int, fn func(lo, hi int)) {
	if threads > items {
		threads = items
	}
	if threads <= 1 || items*costPerItem < parallelMinWork {
		if items > 0 {
			fn(0, items)
		}
		return
	}
	startWorkers()
	chunk := (items + threads - 1) / threads
	// Count every range before the first is queued: a worker that finished
	// one while later ones were still being queued would otherwise see the
	// count reach zero early and close done twice.
	g := &group{done: make(chan struct{})}
	g.pending.Store(int32((items - 1) / chunk))
	for lo := chunk; lo < items; lo += chunk {
		jobs <- job{fn: fn, lo: lo, hi: min(lo+chunk, items), g: g}
	}
	fn(0, min(chunk, items))
	// Spin briefly (the other ranges usually end within microseconds of
	// this one), then block: with more runnable threads than cores, as when
	// several relays share a machine, a waiter that kept spinning would burn
	// the time slice the worker it waits for needs.
	for spins := 0; g.pending.Load() > 0; spins++ {
		if spins >= waitSpins {
			<-g.done
			return
		}
		if spins > 64 {
			runtime.Gosched()
		}
	}
}

// waitSpins is how many times ParallelFor polls before it blocks.
const waitSpins = 1000

// The worker pool: GOMAXPROCS-1 goroutines (at least one) that take ranges
// from jobs. After a job a worker polls for the next one for a short while
// (decode issues products back to back) before it blocks, which saves the
// wake-up latency of a parked thread on every product.
type job struct {
	fn     func(lo, hi int)
	lo, hi int
	g      *group
}

// group is one ParallelFor call: the ranges still running and a channel
// closed when the last of them ends.
type group struct {
	pending atomic.Int32
	done    chan struct{}
}

var (
	jobs        = make(chan job, 64)
	workersOnce sync.Once
)

// workerPolls is how many times an idle worker polls before blocking.
const workerPolls = 2000

func startWorkers() {
	workersOnce.Do(func() {
		n := max(runtime.GOMAXPROCS(0)-1, 1)
		for i := 0; i < n; i++ {
			go worker()
		}
	})
}

func worker() {
	for {
		var j job
		got := false
		for i := 0; i < workerPolls && !got; i++ {
			select {
			case j = <-jobs:
				got = true
			default:
				if i%16 == 15 {
					runtime.Gosched()
				}
			}
		}
		if !got {
			j = <-jobs
		}
		j.fn(j.lo, j.hi)
		if j.g.pending.Add(-1) == 0 {
			close(j.g.done)
		}
	}
}
