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

// Batch is n activation vectors of cols values (row-major) prepared for
// products with one or more matrices: a Q8_0 product quantises the vectors
// (spec/07-model.md §6.1.2) once per batch, whatever the number of matrices
// and ranges. A Batch may be reused with Reset once no product uses it.
type Batch struct {
	x       []float32
	n, cols int
	once    sync.Once
	q8      []byte
	tiles   kernelTiles // the float kernels' copy of x (matvec_amd64.go)
}

// NewBatch wraps x (at least n·cols values) as a batch of n vectors.
func NewBatch(x []float32, n, cols int) *Batch {
	b := &Batch{}
	b.Reset(x, n, cols)
	return b
}

// Reset points the batch at new vectors, keeping its buffers.
func (b *Batch) Reset(x []float32, n, cols int) {
	b.x, b.n, b.cols = x[:n*cols], n, cols
	b.once = sync.Once{}
	b.tiles.reset()
}

// kernelTiles is a batch's copy of its vectors in the float kernels' order
// (Batch.tokenTiles, matvec_amd64.go), made on first use.
type kernelTiles struct {
	once sync.Once
	x    []float32
}

// reset forgets the copy, keeping its buffer.
func (k *kernelTiles) reset() { k.once, k.x = sync.Once{}, k.x[:0] }

// N returns the number of vectors.
func (b *Batch) N() int { return b.n }

// acts returns the batch quantised to activation blocks (cols a multiple of
// 32), computing it on first use.
func (b *Batch) acts() []byte {
	b.once.Do(func() {
		need := len(b.x) / Q8Block * q8ActBytes
		if cap(b.q8) < need {
			b.q8 = make([]byte, need)
		}
		b.q8 = b.q8[:need]
		quantizeActs(b.q8, b.x)
	})
	return b.q8
}

// MatMul computes out[t*w.Rows+r] = w_r · x_t (the canonical product of
// spec/07-model.md §6.1 for w's type) for the n vectors in x, using up to
// threads goroutines. Rows are split into contiguous chunks that the
// threads claim in turn (ParallelForShared) and each row is computed in the
// canonical order, so the result is bit-identical for any thread count, any
// batch size and whichever thread computes a row.
func MatMul(out []float32, w *Mat, x []float32, n, threads int) error {
	if err := checkMatMul(out, w, x, n); err != nil {
		return err
	}
	return MatMulBatch([][]float32{out}, []*Mat{w}, NewBatch(x, n, w.Cols), threads)
}

// MatMulMulti computes MatMul(outs[i], ws[i], x, n, threads) for every i in
// one parallel pass: the rows of all matrices are split as one range, so the
// small matrices of a decode step (q, k, v; gate, up) share one dispatch and
// the threads stay balanced. Results are those of separate MatMul calls.
// Every matrix must have the same column count.
func MatMulMulti(outs [][]float32, ws []*Mat, x []float32, n, threads int) error {
	if len(ws) == 0 {
		return fmt.Errorf("tensor: matmul of no matrices")
	}
	if len(x) < n*ws[0].Cols || n <= 0 {
		return fmt.Errorf("tensor: matmul with %d vectors of %d values: x has %d", n, ws[0].Cols, len(x))
	}
	return MatMulBatch(outs, ws, NewBatch(x, n, ws[0].Cols), threads)
}

// MatMulBatch is MatMulMulti on a prepared batch.
func MatMulBatch(outs [][]float32, ws []*Mat, b *Batch, threads int) error {
	if len(outs) != len(ws) || len(ws) == 0 {
		return fmt.Errorf("tensor: matmul of %d matrices into %d outputs", len(ws), len(outs))
	}
	total := 0
	for i, w := range ws {
		if w.Cols != b.cols {
			return fmt.Errorf("tensor: matmul of a matrix with %d columns by vectors of %d", w.Cols, b.cols)
		}
		if err := checkMatMul(outs[i], w, b.x, b.n); err != nil {
			return err
		}
		total += units(w)
	}
	ParallelForShared(total, threads, b.cols*b.n*unitRows, func(lo, hi int) {
		base := 0
		for i, w := range ws {
			u := units(w)
			if a, e := max(lo, base), min(hi, base+u); a < e {
				productRows(outs[i], w, b, (a-base)*unitRows, min((e-base)*unitRows, w.Rows))
			}
			base += u
		}
	})
	return nil
}

// unitRows is the granularity of the row ranges threads get: a packed
// Q8_0 group, four tiles of the float kernels.
const unitRows = q8GroupRows

func units(w *Mat) int { return (w.Rows + unitRows - 1) / unitRows }

// MatMulRange computes rows [lo, hi) of MatMul(out, w, x, n, ·) on the
// calling goroutine, for callers that split a product themselves with
// ParallelFor and fuse their own work into each range.
func MatMulRange(out []float32, w *Mat, x []float32, n, lo, hi int) error {
	if err := checkMatMul(out, w, x, n); err != nil {
		return err
	}
	return MatMulBatchRange(out, w, NewBatch(x, n, w.Cols), lo, hi)
}

// MatMulBatchRange is MatMulRange on a prepared batch; ranges that start and
// end on multiples of 16 rows are the fastest.
func MatMulBatchRange(out []float32, w *Mat, b *Batch, lo, hi int) error {
	if w.Cols != b.cols {
		return fmt.Errorf("tensor: matmul of a matrix with %d columns by vectors of %d", w.Cols, b.cols)
	}
	if err := checkMatMul(out, w, b.x, b.n); err != nil {
		return err
	}
	if lo < 0 || hi > w.Rows || lo > hi {
		return fmt.Errorf("tensor: matmul rows [%d,%d) of a %d-row matrix", lo, hi, w.Rows)
	}
	if lo < hi {
		productRows(out, w, b, lo, hi)
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

// productRows computes rows [lo, hi) of w·x_t for every vector of b.
func productRows(out []float32, w *Mat, b *Batch, lo, hi int) {
	if w.Type == Q8_0 {
		q8Rows(out, w, b, lo, hi)
		return
	}
	if !gemmAsm(out, w, b, lo, hi) {
		matMulRows(out, w, b.x, b.n, lo, hi)
	}
}

// q8Bufs holds the scratch of Q8_0 products: groups packed on the fly for a
// matrix that was never packed, and the outputs of partial groups.
var q8Bufs = sync.Pool{New: func() any { return new([]byte) }}

// q8Rows computes rows [lo, hi) of a Q8_0 product. Whole groups inside the
// range write straight to out; a group cut by lo or hi is computed into a
// scratch buffer and its rows in range copied.
func q8Rows(out []float32, w *Mat, b *Batch, lo, hi int) {
	acts := b.acts()
	g0, g1 := lo/q8GroupRows, (hi+q8GroupRows-1)/q8GroupRows
	ga, gb := g0, g1
	if lo%q8GroupRows != 0 {
		q8Partial(out, w, b.n, acts, g0, lo, hi)
		ga = g0 + 1
	}
	if hi%q8GroupRows != 0 && gb-1 >= ga {
		q8Partial(out, w, b.n, acts, g1-1, lo, hi)
		gb = g1 - 1
	}
	if ga < gb {
		q8Groups(out, w.Rows, w, b.n, acts, ga, gb)
	}
	runtime.KeepAlive(w)
}

// q8Partial computes group g into scratch and copies its rows in [lo, hi).
func q8Partial(out []float32, w *Mat, n int, acts []byte, g, lo, hi int) {
	tmp := make([]float32, n*q8GroupRows)
	q8GroupsTo(tmp, q8GroupRows, w, n, acts, g, g+1, g)
	for t := 0; t < n; t++ {
		for r := max(lo, g*q8GroupRows); r < min(hi, (g+1)*q8GroupRows); r++ {
			out[t*w.Rows+r] = tmp[t*q8GroupRows+r-g*q8GroupRows]
		}
	}
}

// q8Groups computes whole groups [ga, gb) into out (row stride w.Rows).
func q8Groups(out []float32, ldo int, w *Mat, n int, acts []byte, ga, gb int) {
	q8GroupsTo(out, ldo, w, n, acts, ga, gb, 0)
}

// q8GroupsTo computes groups [ga, gb) for the n activation rows in acts:
// row 16g+i of vector t goes to out[t*ldo + 16(g−base) + i].
func q8GroupsTo(out []float32, ldo int, w *Mat, n int, acts []byte, ga, gb, base int) {
	nb := w.Cols / Q8Block
	ldx := nb * q8ActBytes
	chunk := nb * q8ChunkBytes // bytes of one packed group
	// Groups per pass: the packed rows a pass re-reads for every tile of
	// vectors stay in L2.
	step := max(1, (256<<10)/chunk)
	var bp *[]byte
	for g := ga; g < gb; g += step {
		ge := min(g+step, gb)
		var p []byte
		if w.packed != nil {
			p = w.packed[g*chunk : ge*chunk]
		} else {
			if bp == nil {
				bp = q8Bufs.Get().(*[]byte)
			}
			if cap(*bp) < (ge-g)*chunk {
				*bp = make([]byte, step*chunk)
			}
			p = (*bp)[:(ge-g)*chunk]
			packQ8Groups(p, w.data, w.Rows, w.Cols, g, ge)
		}
		o := (g - base) * q8GroupRows
		if !q8PanelAsm(p, ge-g, nb, acts, ldx, n, out[o:], ldo) {
			q8PanelGeneric(p, ge-g, nb, acts, ldx, n, out[o:], ldo)
		}
	}
	if bp != nil {
		q8Bufs.Put(bp)
	}
}

// matMulRows is the path without batched kernels (no AVX-512, or columns
// not a multiple of 16) for F32, F16 and BF16: a row kernel per vector where
// there is one, else the row dequantised once and Dot with each vector.
func matMulRows(out []float32, w *Mat, x []float32, n, lo, hi int) {
	if matVecAsm(out, w, x, n, lo, hi) {
		return
	}
	cols, rows := w.Cols, w.Rows
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
	threads = min(threads, items)
	if serial(items, threads, costPerItem, fn) {
		return
	}
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
	await(func() bool { return g.pending.Load() > 0 }, g.done)
}

// await returns once busy() is false: it spins briefly (the other ranges
// usually end within microseconds of the caller's), then blocks on done,
// which is closed when busy() turns false: with more runnable threads than
// cores, as when several relays share a machine, a waiter that kept
// spinning would burn the time slice the worker it waits for needs.
func await(busy func() bool, done <-chan struct{}) {
	for spins := 0; busy(); spins++ {
		if spins >= waitSpins {
			<-done
			return
		}
		if spins > 64 {
			runtime.Gosched()
		}
	}
}

// ParallelForShared is ParallelFor for work whose items may go to any
// thread: [0, items) is cut into up to sharedChunks·threads contiguous
// chunks of equal size (the last may be shorter), and the calling goroutine
// and threads−1 workers each claim the next unclaimed chunk until none is
// left. A thread that the operating system deschedules (another process
// wants the core) then delays the call by at most the chunk it holds, not
// by a whole 1/threads share. Which thread runs a chunk must not change the
// result.
func ParallelForShared(items, threads, costPerItem int, fn func(lo, hi int)) {
	threads = min(threads, items)
	if serial(items, threads, costPerItem, fn) {
		return
	}
	chunk := max(1, (items+sharedChunks*threads-1)/(sharedChunks*threads))
	s := &shared{items: items, chunk: chunk, fn: fn}
	s.left.Store(int64(items))
	g := &group{done: make(chan struct{})}
	s.g = g
	for i := 1; i < threads; i++ {
		jobs <- job{fn: s.run, hi: 1, g: nil}
	}
	s.run(0, 1)
	await(func() bool { return s.left.Load() > 0 }, g.done)
}

// serial runs fn over [0, items) on the calling goroutine and reports true
// when one thread is asked for or the work is too small to share;
// otherwise it starts the workers (once) and reports false.
func serial(items, threads, costPerItem int, fn func(lo, hi int)) bool {
	if threads <= 1 || items*costPerItem < parallelMinWork {
		if items > 0 {
			fn(0, items)
		}
		return true
	}
	startWorkers()
	return false
}

// sharedChunks is the number of chunks per thread of ParallelForShared.
// With 4, a decode product's last chunk left one thread streaming alone
// for up to an eighth of the product; 16 shortens that tail (llama-110M F32
// two-thread decode 0.984 → 1.01 × llama-bench, medians of 9 interleaved
// rounds, docs/perf/compute.md §0.5) and costs an atomic add per chunk.
const sharedChunks = 16

// shared is one ParallelForShared call: the next unclaimed item, the items
// not yet done, and a channel closed when they are all done.
type shared struct {
	next, left   atomic.Int64
	items, chunk int
	fn           func(lo, hi int)
	g            *group
}

// run claims and runs chunks until none is left. A worker that takes its
// job after the call has returned finds none and does nothing.
func (s *shared) run(_, _ int) {
	for {
		lo := int(s.next.Add(int64(s.chunk))) - s.chunk
		if lo >= s.items {
			return
		}
		hi := min(lo+s.chunk, s.items)
		s.fn(lo, hi)
		if s.left.Add(int64(lo-hi)) == 0 {
			close(s.g.done)
		}
	}
}

// waitSpins is how many times await polls before it blocks.
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
		if j.g != nil && j.g.pending.Add(-1) == 0 {
			close(j.g.done)
		}
	}
}
