package tensor

import "fmt"

// Batched pieces of the forward pass (spec/07-model.md §6.3): SiLU and
// causal attention for up to 16 queries of one head at a time, with AVX-512
// kernels that keep, lane by lane, the scalar order of operations (a lane is
// a query; sums run over the head's elements or over the keys in order), so
// a prompt processed in one batch gives the bits of its tokens processed one
// by one.

// Silu sets g[i] = (g[i]·(1/(1 + Expf(−g[i]))))·u[i].
func Silu(g, u []float32) {
	u = u[:len(g)]
	for i := siluAsm(g, u); i < len(g); i++ {
		v := g[i]
		g[i] = v * (1 / (1 + Expf(-v))) * u[i]
	}
}

// AttnScratch holds the buffers of Attend16; one per goroutine.
type AttnScratch struct {
	s []float32 // scores; with the kernels also the queries and outputs, transposed
}

// Attend16 computes causal attention for nl ≤ 16 consecutive queries of
// one head, query l at position p0+l: q holds them (query l at q[l*ldq:],
// hd values), keys and values are rows j < p0+nl of kc and vc (row j at
// kc[j*ld:], hd values). For each query, as spec/07-model.md §6.3 step 5:
// score_j = seqdot(q, k_j)/scale for j ≤ p0+l, softmax, and out[l*ldo+d] =
// Σ_j round(a_j·v_j[d]) in order of j from +0.
func Attend16(out []float32, ldo int, q []float32, ldq int, kc, vc []float32, ld, p0, nl, hd int, scale float32, sc *AttnScratch) {
	if nl <= 0 || nl > 16 {
		// An invariant of the caller (the forward pass cuts a prompt into
		// blocks of at most 16 queries), not input: no network or file
		// data reaches nl.
		panic(fmt.Sprintf("tensor: Attend16 of %d queries, want 1..16", nl))
	}
	attend(out, ldo, q, ldq, kc, vc, ld, p0, nl, p0+nl, hd, scale, sc)
}

// AttendHeads is Attend16 for nh ≤ 16 queries at one position pos that
// share their keys and values (the query heads of one key-value head in
// grouped-query attention, at a decode step): every query sees keys j ≤
// pos. Each query gets the bits of Attend16 with that query alone.
func AttendHeads(out []float32, ldo int, q []float32, ldq int, kc, vc []float32, ld, pos, nh, hd int, scale float32, sc *AttnScratch) {
	if nh <= 0 || nh > 16 {
		// An invariant of the caller (a model's heads per key-value
		// head, cut into runs of at most 16).
		panic(fmt.Sprintf("tensor: AttendHeads of %d queries, want 1..16", nh))
	}
	// Lane l sees keys j ≤ pos+l, and only keys j < pos+1 exist: all
	// lanes see the same pos+1 keys.
	attend(out, ldo, q, ldq, kc, vc, ld, pos, nh, pos+1, hd, scale, sc)
}

// attend runs nl lanes over the keys j < n, lane l seeing j ≤ p0+l.
func attend(out []float32, ldo int, q []float32, ldq int, kc, vc []float32, ld, p0, nl, n, hd int, scale float32, sc *AttnScratch) {
	_ = kc[(n-1)*ld+hd-1]
	_ = vc[(n-1)*ld+hd-1]
	if !attendAsm(out, ldo, q, ldq, kc, vc, ld, p0, nl, n, hd, scale, sc) {
		attendGeneric(out, ldo, q, ldq, kc, vc, ld, p0, nl, n, hd, scale, sc)
	}
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// attendGeneric is attend in scalar code, query by query.
func attendGeneric(out []float32, ldo int, q []float32, ldq int, kc, vc []float32, ld, p0, nl, n, hd int, scale float32, sc *AttnScratch) {
	sc.s = grow(sc.s, n)
	for l := 0; l < nl; l++ {
		qh := q[l*ldq : l*ldq+hd]
		s := sc.s[:min(p0+l+1, n)]
		for j := range s {
			k := kc[j*ld : j*ld+hd]
			var acc float32
			for i, qi := range qh {
				acc += float32(qi * k[i])
			}
			s[j] = acc / scale
		}
		m := s[0]
		for _, x := range s[1:] {
			if x > m {
				m = x
			}
		}
		var sum float32
		for j, x := range s {
			e := Expf(x - m)
			s[j] = e
			sum += e
		}
		for j := range s {
			s[j] /= sum
		}
		o := out[l*ldo : l*ldo+hd]
		clear(o)
		for j, a := range s {
			v := vc[j*ld : j*ld+hd]
			for d := range o {
				o[d] += float32(a * v[d])
			}
		}
	}
}

// AttendValues sets out[d] = Σ_j round(a[j]·v_j[d]) for d < len(out),
// accumulated in order of j from +0 (spec/07-model.md §6.3 step 5): the
// value step of one query's attention, value j at v[j*ld:]. With AVX-512
// a lane per dimension, 64 or 16 at a time, in the same order.
func AttendValues(out, a, v []float32, ld int) {
	hd := len(out)
	if len(a) == 0 {
		clear(out)
		return
	}
	_ = v[(len(a)-1)*ld+hd-1]
	if d := valuesAsm(out, a, v, ld); d < hd {
		o := out[d:]
		clear(o)
		for j, w := range a {
			vj := v[j*ld+d : j*ld+hd]
			for e := range o {
				o[e] += float32(w * vj[e])
			}
		}
	}
}
