package mpc

import (
	"fmt"
	"math"
)

// ReferenceBlock0 runs the embedding and block 0 in plaintext float32 for the
// token sequence (positions 0..len-1) and returns the residual stream after
// block 0 for every position, row-major len x Dim. It is the specification
// the MPC circuit approximates: RMSNorm, RoPE, GQA attention with a causal
// mask, SiLU-gated FFN, as in llama2.c.
func ReferenceBlock0(w *Weights, tokens []int) ([]float32, error) {
	if err := w.validate(); err != nil {
		return nil, err
	}
	c := w.Config
	q, kv := c.qDim(), c.kvDim()
	n := len(tokens)
	out := make([]float32, n*c.Dim)
	keys := make([]float32, n*kv)
	vals := make([]float32, n*kv)
	xb := make([]float32, c.Dim)
	for pos, t := range tokens {
		if t < 0 || t >= c.Vocab {
			return nil, fmt.Errorf("mpc: token %d outside vocabulary", t)
		}
		x := append([]float32(nil), w.Embedding[t*c.Dim:(t+1)*c.Dim]...)
		rmsnorm(xb, x, w.AttnNorm, c.NormEps)
		qv := matmulF(w.Wq, xb, q, c.Dim, w.Bq)
		kvec := matmulF(w.Wk, xb, kv, c.Dim, w.Bk)
		vvec := matmulF(w.Wv, xb, kv, c.Dim, w.Bv)
		ropeF(c, qv, c.NHeads, pos)
		ropeF(c, kvec, c.NKVHeads, pos)
		copy(keys[pos*kv:], kvec)
		copy(vals[pos*kv:], vvec)
		att := make([]float32, q)
		scores := make([]float32, pos+1)
		group := c.NHeads / c.NKVHeads
		for h := 0; h < c.NHeads; h++ {
			g := h / group
			qh := qv[h*c.HeadDim : (h+1)*c.HeadDim]
			maxv := float32(math.Inf(-1))
			for j := 0; j <= pos; j++ {
				kh := keys[j*kv+g*c.HeadDim : j*kv+(g+1)*c.HeadDim]
				var s float32
				for i := range qh {
					s += qh[i] * kh[i]
				}
				s /= float32(math.Sqrt(float64(c.HeadDim)))
				scores[j] = s
				maxv = max(maxv, s)
			}
			var sum float32
			for j := range scores {
				scores[j] = float32(math.Exp(float64(scores[j] - maxv)))
				sum += scores[j]
			}
			oh := att[h*c.HeadDim : (h+1)*c.HeadDim]
			for j := 0; j <= pos; j++ {
				p := scores[j] / sum
				vh := vals[j*kv+g*c.HeadDim : j*kv+(g+1)*c.HeadDim]
				for i := range oh {
					oh[i] += p * vh[i]
				}
			}
		}
		o := matmulF(w.Wo, att, c.Dim, q, nil)
		for i := range x {
			x[i] += o[i]
		}
		rmsnorm(xb, x, w.FFNNorm, c.NormEps)
		g := matmulF(w.W1, xb, c.FFN, c.Dim, nil)
		u := matmulF(w.W3, xb, c.FFN, c.Dim, nil)
		for i := range g {
			g[i] = g[i] / (1 + float32(math.Exp(float64(-g[i])))) * u[i]
		}
		f := matmulF(w.W2, g, c.Dim, c.FFN, nil)
		for i := range x {
			x[i] += f[i]
		}
		copy(out[pos*c.Dim:], x)
	}
	return out, nil
}

func rmsnorm(dst, x, w []float32, eps float32) {
	var ss float32
	for _, v := range x {
		ss += v * v
	}
	inv := 1 / float32(math.Sqrt(float64(ss/float32(len(x))+eps)))
	for i := range x {
		dst[i] = x[i] * inv * w[i]
	}
}

func matmulF(w, x []float32, rows, cols int, bias []float32) []float32 {
	o := make([]float32, rows)
	for r := 0; r < rows; r++ {
		var acc float32
		row := w[r*cols : (r+1)*cols]
		for i, v := range row {
			acc += v * x[i]
		}
		if bias != nil {
			acc += bias[r]
		}
		o[r] = acc
	}
	return o
}

func ropeF(c Config, x []float32, heads, pos int) {
	half := c.HeadDim / 2
	for h := 0; h < heads; h++ {
		v := x[h*c.HeadDim : (h+1)*c.HeadDim]
		for i := 0; i < half; i++ {
			freq := 1 / math.Pow(float64(c.RopeTheta), float64(2*i)/float64(c.HeadDim))
			a := float64(pos) * freq
			cs, sn := float32(math.Cos(a)), float32(math.Sin(a))
			j, k := 2*i, 2*i+1
			if !c.RopeAdjacentPairs {
				j, k = i, i+half
			}
			x0, x1 := v[j], v[k]
			v[j] = x0*cs - x1*sn
			v[k] = x0*sn + x1*cs
		}
	}
}
