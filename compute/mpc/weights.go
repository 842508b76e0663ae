package mpc

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"

	"github.com/unfed/unfed/compute/internal/mmap"
)

// Limits on model shapes this package accepts (bounds on what a config can
// make a party allocate).
const (
	MaxDim     = 1 << 14
	MaxVocab   = 1 << 20
	MaxFFN     = 1 << 16
	MaxHeads   = 256
	MaxContext = 1 << 15
)

// ErrConfig reports an invalid or mismatched model configuration.
var ErrConfig = errors.New("mpc: invalid configuration")

// Config is the shape of block 0 and the embedding.
type Config struct {
	Dim       int     // model width
	NHeads    int     // query heads
	NKVHeads  int     // key/value heads (GQA); divides NHeads
	HeadDim   int     // per-head width; NHeads*HeadDim need not equal Dim
	FFN       int     // hidden width of the SiLU-gated FFN
	Vocab     int     // vocabulary size
	NormEps   float32 // RMSNorm epsilon
	RopeTheta float32 // RoPE base (10000 for llama2)
	// RopeAdjacentPairs selects the llama2.c/Meta layout that rotates pairs
	// (2i, 2i+1) of each head; false selects the NEOX layout (i, i+HeadDim/2)
	// used by qwen2.
	RopeAdjacentPairs bool
}

// Validate checks the shape against the package limits.
func (c Config) Validate() error {
	switch {
	case c.Dim < 1 || c.Dim > MaxDim:
		return fmt.Errorf("%w: dim %d", ErrConfig, c.Dim)
	case c.NHeads < 1 || c.NHeads > MaxHeads || c.NKVHeads < 1 || c.NHeads%c.NKVHeads != 0:
		return fmt.Errorf("%w: heads %d/%d", ErrConfig, c.NHeads, c.NKVHeads)
	case c.HeadDim < 2 || c.HeadDim%2 != 0 || c.NHeads*c.HeadDim > MaxDim:
		return fmt.Errorf("%w: head dim %d", ErrConfig, c.HeadDim)
	case c.FFN < 1 || c.FFN > MaxFFN:
		return fmt.Errorf("%w: ffn %d", ErrConfig, c.FFN)
	case c.Vocab < 2 || c.Vocab > MaxVocab:
		return fmt.Errorf("%w: vocab %d", ErrConfig, c.Vocab)
	case !(c.NormEps > 0) || !(c.RopeTheta > 1) || math.IsInf(float64(c.RopeTheta), 0):
		return fmt.Errorf("%w: eps %g theta %g", ErrConfig, c.NormEps, c.RopeTheta)
	}
	return nil
}

func (c Config) qDim() int  { return c.NHeads * c.HeadDim }
func (c Config) kvDim() int { return c.NKVHeads * c.HeadDim }

// hash binds a config and params; it travels in every client message so a
// party refuses randomness dealt for another shape (spec §5.1).
func (c Config) hash(p Params) [8]byte {
	b := make([]byte, 0, 64)
	for _, v := range []int{c.Dim, c.NHeads, c.NKVHeads, c.HeadDim, c.FFN, c.Vocab, p.ExpBits, p.SiLUBits, p.WideBits, Frac} {
		b = binary.BigEndian.AppendUint32(b, uint32(v))
	}
	b = binary.BigEndian.AppendUint32(b, math.Float32bits(c.NormEps))
	b = binary.BigEndian.AppendUint32(b, math.Float32bits(c.RopeTheta))
	if c.RopeAdjacentPairs {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	h := sha256.Sum256(append([]byte("unfed/mpc/config/v2"), b...))
	var o [8]byte
	copy(o[:], h[:8])
	return o
}

// Weights are the public float32 weights of the embedding and block 0, every
// matrix row-major as (out, in), the llama2.c and GGUF layout.
type Weights struct {
	Config    Config
	Embedding []float32 // Vocab x Dim
	AttnNorm  []float32 // Dim
	Wq        []float32 // NHeads*HeadDim x Dim
	Wk        []float32 // NKVHeads*HeadDim x Dim
	Wv        []float32 // NKVHeads*HeadDim x Dim
	Bq        []float32 // optional (qwen2): NHeads*HeadDim
	Bk        []float32 // optional: NKVHeads*HeadDim
	Bv        []float32 // optional: NKVHeads*HeadDim
	Wo        []float32 // Dim x NHeads*HeadDim
	FFNNorm   []float32 // Dim
	W1        []float32 // FFN x Dim (gate)
	W2        []float32 // Dim x FFN (down)
	W3        []float32 // FFN x Dim (up)
}

func (w *Weights) validate() error {
	return w.check(true)
}

// check validates w's shape and values; without embedding it leaves the
// embedding out (a stage's layers hold none: checking a stand-in of
// vocab × dim zeros per layer cost a qwen2.5-0.5B party 545 MB and 1.2 s of
// CPU per layer at start).
func (w *Weights) check(embedding bool) error {
	c := w.Config
	if err := c.Validate(); err != nil {
		return err
	}
	q, kv := c.qDim(), c.kvDim()
	checks := []struct {
		name     string
		v        []float32
		n        int
		optional bool
	}{
		{"embedding", w.Embedding, c.Vocab * c.Dim, !embedding},
		{"attn_norm", w.AttnNorm, c.Dim, false},
		{"wq", w.Wq, q * c.Dim, false},
		{"wk", w.Wk, kv * c.Dim, false},
		{"wv", w.Wv, kv * c.Dim, false},
		{"bq", w.Bq, q, true},
		{"bk", w.Bk, kv, true},
		{"bv", w.Bv, kv, true},
		{"wo", w.Wo, c.Dim * q, false},
		{"ffn_norm", w.FFNNorm, c.Dim, false},
		{"w1", w.W1, c.FFN * c.Dim, false},
		{"w2", w.W2, c.Dim * c.FFN, false},
		{"w3", w.W3, c.FFN * c.Dim, false},
	}
	for _, ch := range checks {
		if ch.optional && ch.v == nil {
			continue
		}
		if len(ch.v) != ch.n {
			return fmt.Errorf("%w: %s has %d values, want %d", ErrConfig, ch.name, len(ch.v), ch.n)
		}
		for _, x := range ch.v {
			if math.IsNaN(float64(x)) || math.Abs(float64(x)) >= 1<<14 {
				return fmt.Errorf("%w: %s value %g outside the fixed-point range", ErrConfig, ch.name, x)
			}
		}
	}
	return nil
}

// layerW is one transformer block's weights in the fixed-point form the
// circuit uses (spec §4.2): int32 at scale Frac, biases at 2*Frac.
type layerW struct {
	wq     wmat // scaled by 1/sqrt(HeadDim) (and, in a stage, attn_norm)
	wk, wv wmat
	bq     []uint64 // at scale 2*Frac, nil if absent (already scaled like wq)
	bk, bv []uint64
	wo     wmat
	w1, w3 wmat // columns scaled by ffn_norm
	w2     wmat
}

// wmat is a weight matrix of the fixed-point form, row-major. The values
// are those of spec §4.2 (int32 at scale Frac); a matrix whose every value
// fits in 16 bits is stored in 16 (w16), else in 32 (w32): the products
// are the same integers, and a matrix of 16 bits is half the memory the
// party's matrix products stream per step.
type wmat struct {
	w32 []int32
	w16 []int16
}

// newWmat returns w in the narrowest of the two forms that holds it.
func newWmat(w []int32) wmat {
	for _, v := range w {
		if v != int32(int16(v)) {
			return wmat{w32: w}
		}
	}
	w16 := make([]int16, len(w))
	for i, v := range w {
		w16[i] = int16(v)
	}
	return wmat{w16: w16}
}

// rowDot returns row r of w (cols wide) times x mod 2^64.
func (w *wmat) rowDot(r, cols int, x []uint64) uint64 {
	if w.w16 != nil {
		return dotI16U64(w.w16[r*cols:(r+1)*cols], x)
	}
	return dotI32U64(w.w32[r*cols:(r+1)*cols], x)
}

// tables are the public lookup tables of the nonlinearities (spec §6.5),
// the same for every layer of a model.
type tables struct {
	par Params
	// interpolated exp and SiLU (value, slope)
	expT, expD   []uint64
	siluT, siluD []uint64
	// expOver is exp(expMax) at scale Frac: what an exp input above the
	// fine window (the comparison's pos, cmp.go) counts as.
	expOver uint64
	recipT  []wideLevel
	rsqrtT  []wideLevel
}

// kvCache is one layer's secret-shared KV cache (spec §6.6): the opened
// masked keys and values and this party's shares of their masks, pos x
// kvDim each.
type kvCache struct {
	K, V []uint64 // K_j = k_j - b_j, V_j = v_j - d_j
	B, D []uint64 // shares of b_j, d_j
}

// add appends the entries of new positions as block returns them, row by
// row: K_t | V_t | [b_t] | [d_t], kvDim each.
func (kv *kvCache) add(e []uint64, kvDim int) {
	for ; len(e) >= 4*kvDim; e = e[4*kvDim:] {
		kv.K = append(kv.K, e[:kvDim]...)
		kv.V = append(kv.V, e[kvDim:2*kvDim]...)
		kv.B = append(kv.B, e[2*kvDim:3*kvDim]...)
		kv.D = append(kv.D, e[3*kvDim:4*kvDim]...)
	}
}

// prepared holds the embedding and block 0 in the fixed-point form the
// circuit uses (spec §4.2).
type prepared struct {
	cfg Config
	par Params
	// table is Vocab x 2*Dim: [E[t] | RMSNorm(E[t]) * attn_norm], each half
	// of a row in int16 at scale Frac - shift (spec §6.1); shift[2t] and
	// shift[2t+1] are the halves' shifts.
	table []int16
	shift []uint8
	layerW
	*tables
	// prepSize sizes the PREP of every position (Party.Prep checks it
	// before decoding anything).
	prepSize prepSize
}

func quant(v []float32, scale float64) []int32 {
	o := make([]int32, len(v))
	for i, x := range v {
		o[i] = int32(math.Round(float64(x) * scale * (1 << Frac)))
	}
	return o
}

func quant2(v []float32, scale float64) []uint64 {
	if v == nil {
		return nil
	}
	o := make([]uint64, len(v))
	for i, x := range v {
		o[i] = fix(float64(x)*scale, 2*Frac)
	}
	return o
}

func prepare(w *Weights, par Params) (*prepared, error) {
	if err := w.validate(); err != nil {
		return nil, err
	}
	c := w.Config
	p := &prepared{cfg: c, par: par}
	// Embedding table and the exact first RMSNorm (spec §6.1): E'[t] depends
	// on t only, so it is a public table looked up with the same DPF. It is
	// by far the largest allocation (1.1 GB for qwen2.5-0.5B) and lives as
	// long as p, so it sits outside the Go heap.
	var err error
	if p.table, err = offHeapInt16(p, c.Vocab*2*c.Dim); err != nil {
		return nil, err
	}
	p.shift = make([]uint8, 2*c.Vocab)
	half := make([]float64, c.Dim)
	for t := 0; t < c.Vocab; t++ {
		row := w.Embedding[t*c.Dim : (t+1)*c.Dim]
		var ss float64
		for _, x := range row {
			ss += float64(x) * float64(x)
		}
		inv := 1 / math.Sqrt(ss/float64(c.Dim)+float64(c.NormEps))
		dst := p.table[t*2*c.Dim:]
		for h := 0; h < 2; h++ {
			for i, x := range row {
				half[i] = float64(x)
				if h == 1 {
					half[i] = float64(x) * inv * float64(w.AttnNorm[i])
				}
			}
			sh, err := tableShift(half)
			if err != nil {
				return nil, fmt.Errorf("mpc: embedding row %d: %w", t, err)
			}
			p.shift[2*t+h] = sh
			for i, v := range half {
				dst[h*c.Dim+i] = int16(math.Round(math.Ldexp(v, Frac-int(sh))))
			}
		}
	}
	p.layerW = quantLayer(c, w.layer(), nil)
	p.tables = newTables(c, par)
	p.prepSize = newPrepSize(c, par)
	return p, nil
}

// quantLayer converts one block's weights (spec §4.2): 1/sqrt(HeadDim) is
// folded into Wq and bq, ffn_norm into the columns of W1 and W3, and, when
// attnNorm is not nil, attn_norm into the columns of Wq, Wk and Wv.
func quantLayer(c Config, l *LayerWeights, attnNorm []float32) layerW {
	qs := 1 / math.Sqrt(float64(c.HeadDim))
	cols := func(w, norm []float32, scale float64) []int32 {
		o := make([]int32, len(w))
		for i, x := range w {
			v := float64(x) * scale
			if norm != nil {
				v *= float64(norm[i%c.Dim])
			}
			o[i] = int32(math.Round(v * (1 << Frac)))
		}
		return o
	}
	var lw layerW
	lw.wq, lw.wk, lw.wv = newWmat(cols(l.Wq, attnNorm, qs)), newWmat(cols(l.Wk, attnNorm, 1)), newWmat(cols(l.Wv, attnNorm, 1))
	lw.bq, lw.bk, lw.bv = quant2(l.Bq, qs), quant2(l.Bk, 1), quant2(l.Bv, 1)
	lw.wo, lw.w2 = newWmat(quant(l.Wo, 1)), newWmat(quant(l.W2, 1))
	lw.w1, lw.w3 = newWmat(cols(l.W1, l.FFNNorm, 1)), newWmat(cols(l.W3, l.FFNNorm, 1))
	return lw
}

// newTables builds the public lookup tables for c and par, every one in the
// rotated form lutG.finish reads.
func newTables(c Config, par Params) *tables {
	tb := &tables{par: par}
	es, ss := par.expSpec(), par.siluSpec()
	tb.expT, tb.expD = rotTable(es.table(math.Exp, Frac)), rotTable(es.slope(math.Exp, Frac))
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	tb.siluT = rotTable(ss.table(func(x float64) float64 { return x * sig(x) }, Frac))
	tb.siluD = rotTable(ss.slope(func(x float64) float64 { return sig(x) * (1 + x*(1-sig(x))) }, Frac))
	tb.expOver = fix(math.Exp(expMax), Frac)
	tb.recipT = wideTables(par.recipSpecs(), 2*Frac,
		func(x float64) float64 { return 1 / math.Max(x, 1) },
		func(x float64) float64 {
			if x < 1 {
				return 0
			}
			return -1 / (x * x)
		})
	eps := float64(c.NormEps)
	dim := float64(c.Dim)
	tb.rsqrtT = wideTables(par.rsqrtSpecs(), Frac,
		func(x float64) float64 { return 1 / math.Sqrt(x/dim+eps) },
		func(x float64) float64 { return -0.5 / dim * math.Pow(x/dim+eps, -1.5) })
	return tb
}

// ropeAngles returns cos and sin at scale Frac for the pairs of one head at pos.
func ropeAngles(c Config, pos int) (cos, sin []uint64) {
	half := c.HeadDim / 2
	cos, sin = make([]uint64, half), make([]uint64, half)
	for i := 0; i < half; i++ {
		freq := 1 / math.Pow(float64(c.RopeTheta), float64(2*i)/float64(c.HeadDim))
		a := float64(pos) * freq
		cos[i], sin[i] = fix(math.Cos(a), Frac), fix(math.Sin(a), Frac)
	}
	return cos, sin
}

// ropeTable returns ropeAngles for the relative positions 0..n-1 (n ≤
// MaxContext), read-only. The angles depend on the head width and base
// only, so the rows are computed once per process and shared by every
// session and step (at most MaxContext·HeadDim values per shape).
func ropeTable(c Config, n int) [][2][]uint64 {
	k := ropeKey{c.HeadDim, c.RopeTheta}
	ropeRows.mu.Lock()
	defer ropeRows.mu.Unlock()
	if ropeRows.t == nil {
		ropeRows.t = map[ropeKey][][2][]uint64{}
	}
	t := ropeRows.t[k]
	for len(t) < n {
		var row [2][]uint64
		row[0], row[1] = ropeAngles(c, len(t))
		t = append(t, row)
	}
	ropeRows.t[k] = t
	return t[:n:n]
}

type ropeKey struct {
	hd    int
	theta float32
}

// ropeRows caches ropeTable's rows per shape; rows, once made, are never
// changed.
var ropeRows struct {
	mu sync.Mutex
	t  map[ropeKey][][2][]uint64
}

// rope rotates every head of x (shares at any scale) in place; the result
// carries Frac more fractional bits. Linear with public angles, so each party
// applies it to its own share.
func rope(c Config, x []uint64, heads int, cos, sin []uint64) {
	half := c.HeadDim / 2
	for h := 0; h < heads; h++ {
		v := x[h*c.HeadDim : (h+1)*c.HeadDim]
		for i := 0; i < half; i++ {
			a, b := 2*i, 2*i+1
			if !c.RopeAdjacentPairs {
				a, b = i, i+half
			}
			x0, x1 := v[a], v[b]
			v[a] = x0*cos[i] - x1*sin[i]
			v[b] = x0*sin[i] + x1*cos[i]
		}
	}
}

// tableShift returns the least shift s <= Frac such that every value of a
// half row rounds into int16 at scale Frac - s: rows whose values are below
// 1/2 keep the full resolution 2^-Frac, larger ones keep 15 bits relative to
// their largest value (spec §6.1).
func tableShift(vals []float64) (uint8, error) {
	var m float64
	for _, v := range vals {
		m = math.Max(m, math.Abs(v))
	}
	for s := 0; s <= Frac; s++ {
		if math.Round(math.Ldexp(m, Frac-s)) <= math.MaxInt16 {
			return uint8(s), nil
		}
	}
	return 0, fmt.Errorf("value %g too large for the table (|v| < 2^15 required)", m)
}

// offHeapInt16 returns n zeroed int16 outside the Go heap, released when
// owner becomes unreachable. Memory the collector does not count leaves the
// heap goal (twice the live heap by default) to the small, short-lived
// allocations of the steps; on the heap the table would double the resident
// memory of a party process.
func offHeapInt16(owner *prepared, n int) ([]int16, error) {
	if n == 0 {
		return nil, nil
	}
	b, release, err := mmap.Anon(2 * n)
	if err != nil {
		return nil, fmt.Errorf("mpc: embedding table: %w", err)
	}
	runtime.AddCleanup(owner, func(release func() error) { _ = release() }, release)
	return unsafe.Slice((*int16)(unsafe.Pointer(&b[0])), n), nil
}

// layer returns block 0's weights.
func (w *Weights) layer() *LayerWeights {
	return &LayerWeights{AttnNorm: w.AttnNorm, Wq: w.Wq, Wk: w.Wk, Wv: w.Wv, Bq: w.Bq, Bk: w.Bk, Bv: w.Bv,
		Wo: w.Wo, FFNNorm: w.FFNNorm, W1: w.W1, W2: w.W2, W3: w.W3}
}
