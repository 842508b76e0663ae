package mpc

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
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
		{"embedding", w.Embedding, c.Vocab * c.Dim, false},
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

// prepared holds the weights in the fixed-point form the circuit uses
// (spec §4.2). Matrices are int32 at scale Frac.
type prepared struct {
	cfg Config
	par Params
	// table is Vocab x 2*Dim: [E[t] | RMSNorm(E[t]) * attn_norm], each half
	// of a row in int16 at scale Frac - shift (spec §6.1); shift[2t] and
	// shift[2t+1] are the halves' shifts.
	table  []int16
	shift  []uint8
	wq     []int32 // scaled by 1/sqrt(HeadDim)
	wk, wv []int32
	bq     []uint64 // at scale 2*Frac, nil if absent (already scaled like wq)
	bk, bv []uint64
	wo     []int32
	w1, w3 []int32 // columns scaled by ffn_norm
	w2     []int32
	// public lookup tables: interpolated exp and SiLU (value, slope)
	expT, expD   []uint64
	siluT, siluD []uint64
	// coarse windows: selector, positive-overflow indicator, exp beyond
	expSel, expOver  []uint64
	siluSel, siluPos []uint64
	recipT           []wideLevel
	rsqrtT           []wideLevel
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
	qs := 1 / math.Sqrt(float64(c.HeadDim))
	p.wq, p.wk, p.wv = quant(w.Wq, qs), quant(w.Wk, 1), quant(w.Wv, 1)
	p.bq, p.bk, p.bv = quant2(w.Bq, qs), quant2(w.Bk, 1), quant2(w.Bv, 1)
	p.wo, p.w2 = quant(w.Wo, 1), quant(w.W2, 1)
	p.w1, p.w3 = make([]int32, len(w.W1)), make([]int32, len(w.W3))
	for o := 0; o < c.FFN; o++ {
		for i := 0; i < c.Dim; i++ {
			n := float64(w.FFNNorm[i])
			p.w1[o*c.Dim+i] = int32(math.Round(float64(w.W1[o*c.Dim+i]) * n * (1 << Frac)))
			p.w3[o*c.Dim+i] = int32(math.Round(float64(w.W3[o*c.Dim+i]) * n * (1 << Frac)))
		}
	}
	es, ss := par.expSpec(), par.siluSpec()
	// Every table in the rotated form lutG.finish reads.
	p.expT, p.expD = rotTable(es.table(math.Exp, Frac)), rotTable(es.slope(math.Exp, Frac))
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	p.siluT = rotTable(ss.table(func(x float64) float64 { return x * sig(x) }, Frac))
	p.siluD = rotTable(ss.slope(func(x float64) float64 { return sig(x) * (1 + x*(1-sig(x))) }, Frac))
	sel, _, over := coarseTables(coarseSpec(2*Frac, expCoarseBits), es)
	p.expSel, p.expOver = rotTable(sel), rotTable(over)
	sel, pos, _ := coarseTables(coarseSpec(3*Frac, siluCoarseBits), ss)
	p.siluSel, p.siluPos = rotTable(sel), rotTable(pos)
	p.recipT = wideTables(par.recipSpecs(), 2*Frac,
		func(x float64) float64 { return 1 / math.Max(x, 1) },
		func(x float64) float64 {
			if x < 1 {
				return 0
			}
			return -1 / (x * x)
		})
	eps := float64(c.NormEps)
	dim := float64(c.Dim)
	p.prepSize = newPrepSize(c, par)
	p.rsqrtT = wideTables(par.rsqrtSpecs(), Frac,
		func(x float64) float64 { return 1 / math.Sqrt(x/dim+eps) },
		func(x float64) float64 { return -0.5 / dim * math.Pow(x/dim+eps, -1.5) })
	return p, nil
}

// matvec returns W x over Z_2^64 for W (rows x cols) in int32.
func matvec(w []int32, x []uint64, rows, cols int) []uint64 {
	out := make([]uint64, rows)
	for r := range out {
		out[r] = dotI32U64(w[r*cols:(r+1)*cols], x)
	}
	return out
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
