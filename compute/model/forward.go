package model

// Forward pass of one shard over a batch of positions. Stages per block:
// RMSNorm → Q/K/V products (+ biases) → RoPE → append K/V to the session
// cache → causal grouped-query attention → output product → residual add →
// RMSNorm → gate/up products → SiLU·up → down product → residual add.
// All float32, every reduction in the canonical order of package tensor
// (spec/07-model.md §6), so results are bit-identical for any thread count
// and for any split of the layers into shards.

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/unfed/unfed/compute/tensor"
)

// maxBatch is the number of positions processed together in prefill. Each
// weight is read from memory once per batch and reused from cache by every
// position of it.
const maxBatch = 64

type scratch struct {
	batch                 int
	x, xb, q, k, v, att   []float32
	tmp, hb, hb2, cos, sn []float32
	// prepared inputs of the products (quantised once for Q8_0 weights)
	bxb, batt, bhb tensor.Batch
}

func (sc *scratch) ensure(cfg Config, b int) {
	if sc.batch >= b {
		return
	}
	sc.batch = b
	sc.x = make([]float32, b*cfg.Dim)
	sc.xb = make([]float32, b*cfg.Dim)
	sc.tmp = make([]float32, b*cfg.Dim)
	sc.q = make([]float32, b*cfg.QDim())
	sc.att = make([]float32, b*cfg.QDim())
	sc.k = make([]float32, b*cfg.KVDim())
	sc.v = make([]float32, b*cfg.KVDim())
	sc.hb = make([]float32, b*cfg.FFNDim)
	sc.hb2 = make([]float32, b*cfg.FFNDim)
	sc.cos = make([]float32, b*cfg.HeadDim/2)
	sc.sn = make([]float32, b*cfg.HeadDim/2)
}

// ForwardTokens runs token ids at positions startPos.. through the shard,
// which must be the first one. startPos must equal Len(). It returns
// len(ids)*Dim activations, or logits when the shard is also the last one.
func (ss *Session) ForwardTokens(ids []int, startPos int) ([]float32, error) {
	if !ss.shard.IsFirst() {
		return nil, fmt.Errorf("model: token input to a shard starting at layer %d", ss.shard.first)
	}
	vocab := ss.shard.cfg.Vocab
	for _, id := range ids {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("model: token id %d outside vocabulary of %d", id, vocab)
		}
	}
	return ss.forward(ids, nil, len(ids), startPos, nil)
}

// ForwardActivations runs n positions of activations (n*Dim values, the
// input of layer First) at positions startPos.. through the shard. It
// returns n*Dim activations, or logits when the shard is the last one: the
// last position's Vocab values, or n*Vocab with SessionOptions.AllLogits
// (with SessionOptions.FinalHidden, the last position's Dim values instead).
func (ss *Session) ForwardActivations(x []float32, n, startPos int) ([]float32, error) {
	if n <= 0 || len(x) != n*ss.shard.cfg.Dim {
		return nil, fmt.Errorf("model: %d activations for %d positions of dim %d", len(x), n, ss.shard.cfg.Dim)
	}
	return ss.forward(nil, x, n, startPos, nil)
}

// ForwardActivationsInto is ForwardActivations with the output of a shard
// that is not the last one appended to dst[:0], grown if need be, rather
// than to a new slice: a relay passes one buffer for every pass of its
// sessions, so that a prompt's rows do not land in new pages, each a page
// fault, at every hop. The result may alias dst.
func (ss *Session) ForwardActivationsInto(dst, x []float32, n, startPos int) ([]float32, error) {
	if n <= 0 || len(x) != n*ss.shard.cfg.Dim {
		return nil, fmt.Errorf("model: %d activations for %d positions of dim %d", len(x), n, ss.shard.cfg.Dim)
	}
	if dst == nil {
		dst = []float32{} // (nil asks forward for a new slice)
	}
	return ss.forward(nil, x, n, startPos, dst)
}

// forward runs the pass; dst, when not nil, is where the output of a shard
// that is not the last goes.
func (ss *Session) forward(ids []int, x []float32, n, startPos int, dst []float32) ([]float32, error) {
	if n <= 0 {
		return nil, fmt.Errorf("model: empty forward pass")
	}
	s := ss.shard
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return nil, ErrClosed
	}
	if startPos != ss.n {
		return nil, fmt.Errorf("model: forward at position %d, session holds %d", startPos, ss.n)
	}
	if err := ss.ensure(startPos + n); err != nil {
		return nil, err
	}
	cfg := s.cfg
	var out []float32
	if s.IsLast() && ss.allLogits {
		out = make([]float32, 0, n*cfg.Vocab)
	} else if !s.IsLast() && dst != nil {
		out = slices.Grow(dst[:0], n*cfg.Dim)
	} else if !s.IsLast() {
		out = make([]float32, 0, n*cfg.Dim)
	}
	ss.scr.ensure(cfg, min(n, maxBatch))
	for done := 0; done < n; {
		b := min(n-done, maxBatch)
		sc := ss.scr
		xs := sc.x[:b*cfg.Dim]
		if ids != nil {
			for t := 0; t < b; t++ {
				s.embd.Row(xs[t*cfg.Dim:(t+1)*cfg.Dim], ids[done+t])
			}
		} else {
			copy(xs, x[done*cfg.Dim:(done+b)*cfg.Dim])
		}
		pos := startPos + done
		ss.ropeTables(pos, b)
		for li, w := range s.layers {
			ss.block(li, w, pos, b)
		}
		ss.n = pos + b
		done += b
		switch {
		case !s.IsLast():
			out = append(out, xs...)
		case ss.allLogits:
			out = append(out, ss.logits(0, b)...)
		case done == n && ss.finalHidden:
			out = append([]float32(nil), xs[(b-1)*cfg.Dim:b*cfg.Dim]...)
		case done == n:
			out = ss.logits(b-1, b)
		}
	}
	return out, nil
}

// logits applies the final norm and output head to positions [from, to) of
// the current batch.
func (ss *Session) logits(from, to int) []float32 {
	s, sc, cfg := ss.shard, ss.scr, ss.shard.cfg
	m := to - from
	xb := sc.xb[:m*cfg.Dim]
	for t := 0; t < m; t++ {
		rmsNorm(xb[t*cfg.Dim:(t+1)*cfg.Dim], sc.x[(from+t)*cfg.Dim:(from+t+1)*cfg.Dim], s.outNorm, cfg.NormEps)
	}
	out := make([]float32, m*cfg.Vocab)
	_ = tensor.MatMul(out, s.output, xb, m, s.threads)
	return out
}

// ropeTables fills cos/sin for positions pos..pos+b-1.
func (ss *Session) ropeTables(pos, b int) {
	sc, half := ss.scr, len(ss.shard.freqs)
	for t := 0; t < b; t++ {
		for i, f := range ss.shard.freqs {
			sn, cs := tensor.Sincos(float64(pos+t) * f)
			sc.cos[t*half+i], sc.sn[t*half+i] = float32(cs), float32(sn)
		}
	}
}

func (ss *Session) block(li int, w *layerWeights, pos, b int) {
	s, sc, cfg := ss.shard, ss.scr, ss.shard.cfg
	dim, qd, kvd, ffn := cfg.Dim, cfg.QDim(), cfg.KVDim(), cfg.FFNDim
	x, xb := sc.x[:b*dim], sc.xb[:b*dim]
	q, k, v := sc.q[:b*qd], sc.k[:b*kvd], sc.v[:b*kvd]

	for t := 0; t < b; t++ {
		rmsNorm(xb[t*dim:(t+1)*dim], x[t*dim:(t+1)*dim], w.attnNorm, cfg.NormEps)
	}
	sc.bxb.Reset(xb, b, dim)
	_ = tensor.MatMulBatch([][]float32{q, k, v}, []*tensor.Mat{w.wq, w.wk, w.wv}, &sc.bxb, s.threads)
	if w.bq != nil {
		addBias(q, w.bq)
		addBias(k, w.bk)
		addBias(v, w.bv)
	}
	half := cfg.HeadDim / 2
	for t := 0; t < b; t++ {
		cs, sn := sc.cos[t*half:(t+1)*half], sc.sn[t*half:(t+1)*half]
		rope(q[t*qd:(t+1)*qd], cfg.HeadDim, cfg.RopeStyle, cs, sn)
		rope(k[t*kvd:(t+1)*kvd], cfg.HeadDim, cfg.RopeStyle, cs, sn)
	}
	copy(ss.k[li][pos*kvd:(pos+b)*kvd], k)
	copy(ss.v[li][pos*kvd:(pos+b)*kvd], v)

	ss.attention(li, pos, b)

	tmp := sc.tmp[:b*dim]
	sc.batt.Reset(sc.att[:b*qd], b, qd)
	_ = tensor.MatMulBatch([][]float32{tmp}, []*tensor.Mat{w.wo}, &sc.batt, s.threads)
	addInPlace(x, tmp)

	for t := 0; t < b; t++ {
		rmsNorm(xb[t*dim:(t+1)*dim], x[t*dim:(t+1)*dim], w.ffnNorm, cfg.NormEps)
	}
	hb, hb2 := sc.hb[:b*ffn], sc.hb2[:b*ffn]
	// Gate, up and SiLU in one pass: each thread takes a range of hidden
	// units (whole groups of 16, the kernels' unit), so the activation runs
	// in parallel too.
	sc.bxb.Reset(xb, b, dim)
	const unit = 16
	tensor.ParallelForShared((ffn+unit-1)/unit, s.threads, 2*dim*b*unit, func(lo, hi int) {
		lo, hi = lo*unit, min(hi*unit, ffn)
		_ = tensor.MatMulBatchRange(hb, w.gate, &sc.bxb, lo, hi)
		_ = tensor.MatMulBatchRange(hb2, w.up, &sc.bxb, lo, hi)
		for t := 0; t < b; t++ {
			silu(hb[t*ffn+lo:t*ffn+hi], hb2[t*ffn+lo:t*ffn+hi])
		}
	})
	sc.bhb.Reset(hb, b, ffn)
	_ = tensor.MatMulBatch([][]float32{tmp}, []*tensor.Mat{w.down}, &sc.bhb, s.threads)
	addInPlace(x, tmp)
}

var (
	scoreBufs = sync.Pool{New: func() any { return new([]float32) }}
	attnBufs  = sync.Pool{New: func() any { return new(tensor.AttnScratch) }}
)

// attention computes causal grouped-query attention for the b positions of
// the batch (queries in scr.q, keys and values already in the cache) into
// scr.att. A prefill batch goes by heads and blocks of 16 positions through
// tensor.Attend16; a single position by groups of heads that share a
// key-value head through tensor.AttendHeads, or with one query head per
// key-value head by heads through the scalar code. All compute every
// (position, head) in the order of spec 07 §6.3, so they give the same bits.
func (ss *Session) attention(li, pos, b int) {
	s, sc, cfg := ss.shard, ss.scr, ss.shard.cfg
	hd, qd, kvd := cfg.HeadDim, cfg.QDim(), cfg.KVDim()
	group := cfg.NHeads / cfg.NKVHeads
	kc, vc := ss.k[li], ss.v[li]
	scale := float32(math.Sqrt(float64(hd)))
	if b > 1 {
		blocks := (b + 15) / 16
		tensor.ParallelFor(cfg.NHeads*blocks, s.threads, (pos+b)*hd*2*16, func(lo, hi int) {
			as := attnBufs.Get().(*tensor.AttnScratch)
			for it := lo; it < hi; it++ {
				h, t0 := it/blocks, (it%blocks)*16
				nl := min(16, b-t0)
				kvOff := (h / group) * hd
				tensor.Attend16(sc.att[t0*qd+h*hd:], qd, sc.q[t0*qd+h*hd:], qd,
					kc[kvOff:], vc[kvOff:], kvd, pos+t0, nl, hd, scale, as)
			}
			attnBufs.Put(as)
		})
		return
	}
	if group > 1 {
		// One position: the query heads of a key-value head share its keys
		// and values, and run as the lanes of one tensor.AttendHeads, in
		// runs of up to 16 heads.
		runs := (group + 15) / 16
		tensor.ParallelFor(cfg.NKVHeads*runs, s.threads, (pos+1)*hd*2*min(group, 16), func(lo, hi int) {
			as := attnBufs.Get().(*tensor.AttnScratch)
			for it := lo; it < hi; it++ {
				g, h0 := it/runs, (it%runs)*16
				h := g*group + h0
				tensor.AttendHeads(sc.att[h*hd:], hd, sc.q[h*hd:], hd,
					kc[g*hd:], vc[g*hd:], kvd, pos, min(16, group-h0), hd, scale, as)
			}
			attnBufs.Put(as)
		})
		return
	}
	items := b * cfg.NHeads
	tensor.ParallelFor(items, s.threads, (pos+b)*hd*2, func(lo, hi int) {
		bp := scoreBufs.Get().(*[]float32)
		if cap(*bp) < pos+b {
			*bp = make([]float32, pos+b)
		}
		for it := lo; it < hi; it++ {
			t, h := it/cfg.NHeads, it%cfg.NHeads
			p := pos + t
			qh := sc.q[t*qd+h*hd : t*qd+(h+1)*hd]
			kvOff := (h / group) * hd
			scores := (*bp)[:p+1]
			attnScores(scores, qh, kc, kvd, kvOff, scale)
			softmax(scores)
			out := sc.att[t*qd+h*hd : t*qd+(h+1)*hd]
			attnValues(out, scores, vc, kvd, kvOff)
		}
		scoreBufs.Put(bp)
	})
}

// attnScores sets scores[j] = (q · key j) / scale for every cached position
// j, each dot product summed sequentially over the head's elements
// (spec/07-model.md §6.3). Four positions run interleaved for speed; each
// keeps its own sequential order.
func attnScores(scores, q, kc []float32, kvd, off int, scale float32) {
	hd := len(q)
	j := 0
	for ; j+4 <= len(scores); j += 4 {
		k0 := kc[j*kvd+off : j*kvd+off+hd]
		k1 := kc[(j+1)*kvd+off : (j+1)*kvd+off+hd]
		k2 := kc[(j+2)*kvd+off : (j+2)*kvd+off+hd]
		k3 := kc[(j+3)*kvd+off : (j+3)*kvd+off+hd]
		var s0, s1, s2, s3 float32
		for i, qi := range q {
			s0 += float32(qi * k0[i])
			s1 += float32(qi * k1[i])
			s2 += float32(qi * k2[i])
			s3 += float32(qi * k3[i])
		}
		scores[j], scores[j+1], scores[j+2], scores[j+3] = s0/scale, s1/scale, s2/scale, s3/scale
	}
	for ; j < len(scores); j++ {
		k := kc[j*kvd+off : j*kvd+off+hd]
		var s float32
		for i, qi := range q {
			s += float32(qi * k[i])
		}
		scores[j] = s / scale
	}
}

// attnValues sets out = Σ_j weights[j] · value j, accumulated in order of j.
func attnValues(out, weights, vc []float32, kvd, off int) {
	tensor.AttendValues(out, weights, vc[off:], kvd)
}

// silu sets g[i] = g[i]·(1/(1 + expf(−g[i])))·u[i] (spec/07-model.md §6.3).
func silu(g, u []float32) { tensor.Silu(g, u) }

// rmsNorm writes w * (x / sqrt(mean(x²) + eps)) into out.
func rmsNorm(out, x, w []float32, eps float32) {
	ss := tensor.Dot(x, x)/float32(len(x)) + eps
	r := 1 / float32(math.Sqrt(float64(ss)))
	for i := range out {
		out[i] = w[i] * (r * x[i])
	}
}

// softmax normalises v in place: exp(v - max) / sum, summed in index order.
func softmax(v []float32) {
	m := v[0]
	for _, x := range v[1:] {
		if x > m {
			m = x
		}
	}
	var sum float32
	for i, x := range v {
		e := tensor.Expf(x - m)
		v[i] = e
		sum += e
	}
	for i := range v {
		v[i] /= sum
	}
}

// rope rotates every head of v (heads of hd elements) by the angles whose
// cosines and sines are cs, sn (hd/2 each).
func rope(v []float32, hd int, style RopeStyle, cs, sn []float32) {
	half := hd / 2
	for h := 0; h+hd <= len(v); h += hd {
		head := v[h : h+hd]
		for i := 0; i < half; i++ {
			a, b := 2*i, 2*i+1
			if style == RopeNeox {
				a, b = i, i+half
			}
			x0, x1 := head[a], head[b]
			head[a] = float32(x0*cs[i]) - float32(x1*sn[i])
			head[b] = float32(x0*sn[i]) + float32(x1*cs[i])
		}
	}
}

func addBias(v, bias []float32) {
	n := len(bias)
	for o := 0; o+n <= len(v); o += n {
		row := v[o : o+n]
		for i, b := range bias {
			row[i] += b
		}
	}
}

func addInPlace(dst, src []float32) {
	for i := range dst {
		dst[i] += src[i]
	}
}
