package mpc

import (
	"context"
	"fmt"
	"runtime"

	"github.com/unfed/unfed/compute/mpc/dpf"
	"github.com/unfed/unfed/compute/tensor"
)

// The per-token circuit of spec §7, party side. Rounds:
//
//	1  truncate q, k and v (RoPE goes into the scores)
//	2  open q-a (fresh mask), k_t-b_t and v_t-d_t (masks fixed for position t)
//	3  exp LUT of s_j - s_t and the window comparison (cmp.go)
//	4  select fine or coarse (Beaver)
//	5  open e-g | reciprocal LUT levels of S and their level selectors
//	6  select the reciprocal level fused with p = e * (1/S)
//	7  truncate p; its opening gives o = sum_j p_j v_j with the cached
//	   value masks (spec §6.10: no opening of p - g')
//	8  truncate the residual h = x + Wo o; its opening is the norm's input
//	   (spec §6.10: no opening of h - a)
//	9  rsqrt LUT levels of the sum of squares and their level selectors
//	10 select the rsqrt level fused with h * rstd
//	11 SiLU LUT of the gate and its window comparison | truncate gate and up
//	12 silu(g) * u = sel*fine*u + pos*g*u (two triple products sharing u)
//
// dealer.go mirrors the order in which correlated values are consumed; the
// two must change together.

func cat(vs ...[]uint64) []uint64 {
	n := 0
	for _, v := range vs {
		n += len(v)
	}
	out := make([]uint64, 0, n)
	for _, v := range vs {
		out = append(out, v...)
	}
	return out
}

// embed evaluates the token key over the vocabulary and returns shares of
// the table row [E[t] | E'[t]] at scale Frac (spec §6.1).
func (w *prepared) embed(k *dpf.Key) ([]uint64, error) {
	c := w.cfg
	y := make([]uint64, 2*c.Vocab)
	if err := k.EvalAll(y[:c.Vocab]); err != nil {
		return nil, err
	}
	// Each half row is stored at scale Frac - shift: scale its share of the
	// one-hot vector by 2^shift instead (exact mod 2^64).
	yE, yN := y[:c.Vocab], y[c.Vocab:]
	for v := range yE {
		yN[v] = yE[v] << w.shift[2*v+1]
		yE[v] <<= w.shift[2*v]
	}
	row := embedRows(w.table, yE, yN, c.Dim)
	runtime.KeepAlive(w) // w.table is released with w (offHeapInt16)
	return row, nil
}

// embedRows returns sum_v yE[v] * table[v][:dim] | sum_v yN[v] *
// table[v][dim:] over rows of width 2*dim (mod 2^64). The columns are split
// over the engine's worker pool (the sum is exact, so the split changes no
// bit); within a range, four rows per pass keep each accumulator in a
// register for four products instead of one.
func embedRows(table []int16, yE, yN []uint64, dim int) []uint64 {
	width := 2 * dim
	acc := make([]uint64, width)
	tensor.ParallelFor(width, runtime.GOMAXPROCS(0), len(yE), func(lo, hi int) {
		if lo < dim {
			embedCols(acc[lo:min(hi, dim)], table, yE, width, lo)
		}
		if hi > dim {
			lo = max(lo, dim)
			embedCols(acc[lo:hi], table, yN, width, lo)
		}
	})
	return acc
}

// embed4, if not nil, is an assembly kernel for embedCols' four-row pass
// over n columns, n a multiple of 16, which leaves the high halves of the
// products' top 32 bits in accHi (kernels_amd64.go).
var embed4 func(acc *uint64, accHi *uint32, r0, r1, r2, r3 *int16, y *uint64, n int)

// embedCols accumulates columns [lo, lo+len(acc)) of embedRows with the
// one-hot shares y.
func embedCols(acc []uint64, table []int16, y []uint64, width, lo int) {
	n := len(acc)
	n16 := 0
	var hi []uint32
	if embed4 != nil {
		n16 = n &^ 15
		hi = make([]uint32, n16)
	}
	v := 0
	for ; v+4 <= len(y); v += 4 {
		y0, y1, y2, y3 := y[v], y[v+1], y[v+2], y[v+3]
		r0 := table[v*width+lo:][:n]
		r1 := table[(v+1)*width+lo:][:n]
		r2 := table[(v+2)*width+lo:][:n]
		r3 := table[(v+3)*width+lo:][:n]
		if n16 > 0 {
			embed4(&acc[0], &hi[0], &r0[0], &r1[0], &r2[0], &r3[0], &y[v], n16)
		}
		for i := n16; i < n; i++ {
			acc[i] += y0*uint64(int64(r0[i])) + y1*uint64(int64(r1[i])) +
				y2*uint64(int64(r2[i])) + y3*uint64(int64(r3[i]))
		}
	}
	for ; v < len(y); v++ {
		row := table[v*width+lo:][:n]
		for i, x := range row {
			acc[i] += y[v] * uint64(int64(x))
		}
	}
	for i, h := range hi {
		acc[i] += uint64(h) << 32
	}
}

// circuit returns this party's output share (scale OutScale) and the cache
// entries of the new position: K_t, V_t, [b_t], [d_t].
func (p *Party) circuit(ctx context.Context, r *run, tk *dpf.Key) ([]uint64, []uint64, error) {
	w := p.w
	emb, err := w.embed(tk)
	if err != nil {
		return nil, nil, err
	}
	D := w.cfg.Dim
	// The normalised row at scale 2F, as block takes it (exact).
	hn := emb[D:]
	for i := range hn {
		hn[i] <<= Frac
	}
	return block(ctx, r, w.cfg, &w.layerW, w.tables, p.pos, 1, &p.kv, emb[:D], hn)
}

// batch describes the rows of one step: n consecutive positions from t0,
// row r attending to the L(r) = t0+r+1 positions up to its own (causal).
// Per-score vectors are laid out row by row, then head by head, then key
// position: score (r, h, j) sits at off(r) + h*L(r) + j.
type batch struct{ t0, n, heads int }

func (b batch) L(r int) int { return b.t0 + r + 1 }

// off returns the index of row r's first score.
func (b batch) off(r int) int { return b.heads * (r*b.t0 + r*(r+1)/2) }

// scores returns the number of scores of the batch.
func (b batch) scores() int { return b.off(b.n) }

// matvecRows returns W x_r for each of the n rows of x (row-major): out
// holds n rows of rows values. Each weight row is read once for all n rows
// of x (a prefill step's positions), not once per row.
func matvecRows(w wmat, x []uint64, rows, cols, n int) []uint64 {
	out := make([]uint64, n*rows)
	for r := 0; r < rows; r++ {
		for i := 0; i < n; i++ {
			out[i*rows+r] = w.rowDot(r, cols, x[i*cols:(i+1)*cols])
		}
	}
	return out
}

// block runs one transformer block (spec §7, rounds 1-12 after the
// embedding) for the n positions t0..t0+n-1 at once (spec/10 §5: the rounds
// are per layer per batch) on this party's shares of the residual x and of
// the normalised input hn (n x Dim each, scale Frac and 2*Frac), with the layer's
// weights lw and its KV cache kv holding the t0 earlier positions. It returns
// the output shares (n x Dim, scale OutScale) and the cache entries of the
// new positions, row by row: K_t, V_t, [b_t], [d_t].
func block(ctx context.Context, r *run, c Config, lw *layerW, tb *tables, t0, n int, kv *kvCache, x, hn []uint64) ([]uint64, []uint64, error) {
	D, Q, KV, H, hd := c.Dim, c.qDim(), c.kvDim(), c.NHeads, c.HeadDim
	bt := batch{t0: t0, n: n, heads: H}
	NS := bt.scores()
	group := H / c.NKVHeads
	par := tb.par
	var err error

	// q, k, v at scale 3F from hn at 2F (biases at 2F shifted to 3F), each
	// truncated once; RoPE goes into the scores (spec §4.2).
	q := matvecRows(lw.wq, hn, Q, D, n)
	k := matvecRows(lw.wk, hn, KV, D, n)
	v := matvecRows(lw.wv, hn, KV, D, n)
	for row := 0; row < n; row++ {
		for _, bb := range []struct {
			out, b []uint64
			w      int
		}{{q, lw.bq, Q}, {k, lw.bk, KV}, {v, lw.bv, KV}} {
			for i, b := range bb.b {
				bb.out[row*bb.w+i] += r.pub(b << Frac)
			}
		}
	}

	// Round 1.
	tqk, err := r.readTrunc(n*(Q+KV), 2*Frac)
	if err != nil {
		return nil, nil, err
	}
	tv, err := r.readTrunc(n*KV, 2*Frac)
	if err != nil {
		return nil, nil, err
	}
	o, err := r.open(ctx, cat(tqk.mask(r, cat(q, k)), tv.mask(r, v)))
	if err != nil {
		return nil, nil, err
	}
	qk := tqk.finish(r, o[:n*(Q+KV)])
	q, k = qk[:n*Q], qk[n*Q:]
	v = tv.finish(r, o[n*(Q+KV):])

	// Round 2: masked q (fresh), k_t and v_t (masks kept with the cache).
	a, err := r.src.next(n * Q)
	if err != nil {
		return nil, nil, err
	}
	btm, err := r.src.next(n * KV)
	if err != nil {
		return nil, nil, err
	}
	dtm, err := r.src.next(n * KV)
	if err != nil {
		return nil, nil, err
	}
	ab, err := r.src.next(NS)
	if err != nil {
		return nil, nil, err
	}
	m2 := make([]uint64, 0, n*(Q+2*KV))
	for i := range q {
		m2 = append(m2, q[i]-a[i])
	}
	for i := range k {
		m2 = append(m2, k[i]-btm[i])
	}
	for i := range v {
		m2 = append(m2, v[i]-dtm[i])
	}
	if o, err = r.open(ctx, m2); err != nil {
		return nil, nil, err
	}
	E, Kt, Vt := o[:n*Q], o[n*Q:n*(Q+KV)], o[n*(Q+KV):]
	keyAt := func(j int) (pubK, shB []uint64) {
		if j >= t0 {
			i := j - t0
			return Kt[i*KV : (i+1)*KV], btm[i*KV : (i+1)*KV]
		}
		return kv.K[j*KV : (j+1)*KV], kv.B[j*KV : (j+1)*KV]
	}
	valAt := func(j int) (pubV, shD []uint64) {
		if j >= t0 {
			i := j - t0
			return Vt[i*KV : (i+1)*KV], dtm[i*KV : (i+1)*KV]
		}
		return kv.V[j*KV : (j+1)*KV], kv.D[j*KV : (j+1)*KV]
	}
	// scores s_{r,h,j} = (R(t0+r−j)·q_{r,h}) . k_j at scale 3F (1/sqrt(hd)
	// folded into Wq; RoPE by the relative position, spec §4.2: with
	// q = E + a, k_j = K_j + b_j, R·q = R·E + R·[a], and the dealer's
	// [(R·a)·b_j]), then the arguments u = s_j - s_own (spec §6.5).
	rot := ropeTable(c, t0+n)
	s := make([]uint64, NS)
	u := make([]uint64, NS)
	re, ra := make([]uint64, hd), make([]uint64, hd)
	for row := 0; row < n; row++ {
		L, base := bt.L(row), bt.off(row)
		Er, ar := E[row*Q:(row+1)*Q], a[row*Q:(row+1)*Q]
		for j := 0; j < L; j++ {
			Kj, Bj := keyAt(j)
			cos, sin := rot[t0+row-j][0], rot[t0+row-j][1]
			for h := 0; h < H; h++ {
				g := h / group
				copy(re, Er[h*hd:(h+1)*hd])
				copy(ra, ar[h*hd:(h+1)*hd])
				rope(c, re, 1, cos, sin)
				rope(c, ra, 1, cos, sin)
				kj, bj := Kj[g*hd:(g+1)*hd], Bj[g*hd:(g+1)*hd]
				var acc, pubAcc uint64
				for i := 0; i < hd; i++ {
					pubAcc += re[i] * kj[i]
					acc += re[i]*bj[i] + ra[i]*kj[i]
				}
				s[base+h*L+j] = acc + ab[base+h*L+j] + r.pub(pubAcc)
			}
		}
		for h := 0; h < H; h++ {
			for j := 0; j < L; j++ {
				u[base+h*L+j] = s[base+h*L+j] - s[base+h*L+L-1]
			}
		}
	}

	// Round 3: exp on the fine window and the coarse window (spec §6.5).
	le, err := r.readLUT(NS, par.expSpec())
	if err != nil {
		return nil, nil, err
	}
	lc, err := r.readCmp(NS, par.expCmp())
	if err != nil {
		return nil, nil, err
	}
	if o, err = r.open(ctx, le.mask(r, u)); err != nil {
		return nil, nil, err
	}
	eo, err := le.finish(o, tb.expD, tb.expT)
	if err != nil {
		return nil, nil, err
	}
	sel, over, err := lc.finish(r, o)
	if err != nil {
		return nil, nil, err
	}
	// Round 4: e = sel * fine + over * exp(expMax).
	mx, err := r.readMul(NS)
	if err != nil {
		return nil, nil, err
	}
	if o, err = r.open(ctx, mx.mask(sel, eo[0])); err != nil {
		return nil, nil, err
	}
	e := mx.finish(r, o)
	for i := range e {
		e[i] += over[i] * tb.expOver
	}
	// S per row and head; rh(i) maps score i to its row and head.
	NH := n * H
	S := make([]uint64, NH)
	rh := make([]int32, NS)
	for row := 0; row < n; row++ {
		L, base := bt.L(row), bt.off(row)
		for h := 0; h < H; h++ {
			for j := 0; j < L; j++ {
				S[row*H+h] += e[base+h*L+j]
				rh[base+h*L+j] = int32(row*H + h)
			}
		}
	}

	// Round 5: open e-g (for p = e/S), and the reciprocal levels of S
	// (their level selectors need no round of their own, §6.7).
	gm, err := r.src.next(NS)
	if err != nil {
		return nil, nil, err
	}
	rs := par.recipSpecs()
	recipG := make([]*lutG, len(rs))
	m4 := make([]uint64, 0, NS+len(rs)*NH)
	for i := range e {
		m4 = append(m4, e[i]-gm[i])
	}
	for k, spec := range rs {
		if recipG[k], err = r.readLUT(NH, spec); err != nil {
			return nil, nil, err
		}
		m4 = append(m4, recipG[k].mask(r, S)...)
	}
	if o, err = r.open(ctx, m4); err != nil {
		return nil, nil, err
	}
	E4 := o[:NS]
	recipSel, err := wideFinish(r, recipG, o[NS:], tb.recipT, NH)
	if err != nil {
		return nil, nil, err
	}

	// Round 6: p = e·(1/S)
	// at scale 3F (1/S is at scale 2F), the reciprocal's level select and
	// the product with e = E4 + g (E4 opened in round 5) in one round
	// (spec §6.7).
	gsel, err := r.readSelMul(len(rs), NH, NS, 1)
	if err != nil {
		return nil, nil, err
	}
	if o, err = r.open(ctx, gsel.mask(recipSel[0], recipSel[1])); err != nil {
		return nil, nil, err
	}
	_, prob := gsel.finish(r, o, E4, [][]uint64{gm}, [][]uint64{nil}, func(i int) int { return int(rh[i]) })

	// Round 7: truncate p to scale F, and o = sum_j p_j v_j at scale 2F
	// from the truncation's opening with the cached value masks (spec
	// §6.10): p_j = X_j − ρ_j + κ_j·τ_j, v_j = V_j + d_j, so
	// p_j·v_j = X_j·V_j + X_j·[d_j] + V_j·(−[ρ_j] + κ_j·[τ_j]) − [ρ_j·d_j] + κ_j·[τ_j·d_j],
	// with [Σ_j ρ_j·d_j] dealt per row, head and element and [τ_j·d_j]
	// per score and element (mod 2^32: κ_j is 0 or 2^32).
	tp, err := r.readTrunc(NS, 2*Frac)
	if err != nil {
		return nil, nil, err
	}
	rd, err := r.src.next(n * Q)
	if err != nil {
		return nil, nil, err
	}
	td, err := r.src.next32(NS * hd)
	if err != nil {
		return nil, nil, err
	}
	if o, err = r.open(ctx, tp.mask(r, prob)); err != nil {
		return nil, nil, err
	}
	pX, pK := tp.split(o)
	att := make([]uint64, n*Q)
	for row := 0; row < n; row++ {
		L, base := bt.L(row), bt.off(row)
		for j := 0; j < L; j++ {
			Vj, Dj := valAt(j)
			for h := 0; h < H; h++ {
				gg := h / group
				idx := base + h*L + j
				X, kap := pX[idx], pK[idx]
				y := kap*tp.r63[idx] - tp.rs[idx] // this party's share of p_j − X_j
				pubX := r.pub(X)
				vj, dj := Vj[gg*hd:(gg+1)*hd], Dj[gg*hd:(gg+1)*hd]
				tdj := td[idx*hd : (idx+1)*hd]
				oh := att[row*Q+h*hd : row*Q+(h+1)*hd]
				for i := 0; i < hd; i++ {
					oh[i] += pubX*vj[i] + X*dj[i] + y*vj[i] + kap*tdj[i]
				}
			}
		}
	}
	for i := range att {
		att[i] -= rd[i]
	}
	h3 := matvecRows(lw.wo, att, D, Q, n) // scale 3F
	for i := range h3 {
		h3[i] += x[i] << (2 * Frac)
	}

	// Round 8: residual h at scale F, its truncation's opening the input
	// of the norm (§6.10: no opening of h − a).
	t9, err := r.readTrunc(n*D, 2*Frac)
	if err != nil {
		return nil, nil, err
	}
	if o, err = r.open(ctx, t9.mask(r, h3)); err != nil {
		return nil, nil, err
	}
	hres := t9.finish(r, o)
	in, err := truncNormIn(r, t9, o, n)
	if err != nil {
		return nil, nil, err
	}

	// Rounds 9-10: hf = h * rstd at scale 2F.
	hf, err := normShares(ctx, r, tb, in, n)
	if err != nil {
		return nil, nil, err
	}
	F := c.FFN
	gate := matvecRows(lw.w1, hf, F, D, n) // scale 3F (ffn_norm folded)
	up := matvecRows(lw.w3, hf, F, D, n)

	// Round 13: SiLU of the gate on the fine and coarse windows; truncate
	// the gate and the up projection.
	NF := n * F
	ls, err := r.readLUT(NF, par.siluSpec())
	if err != nil {
		return nil, nil, err
	}
	lsc, err := r.readCmp(NF, par.siluCmp())
	if err != nil {
		return nil, nil, err
	}
	tu, err := r.readTrunc(2*NF, 2*Frac)
	if err != nil {
		return nil, nil, err
	}
	if o, err = r.open(ctx, cat(ls.mask(r, gate), tu.mask(r, cat(up, gate)))); err != nil {
		return nil, nil, err
	}
	so, err := ls.finish(o[:NF], tb.siluD, tb.siluT)
	if err != nil {
		return nil, nil, err
	}
	ssel, spos, err := lsc.finish(r, o[:NF])
	if err != nil {
		return nil, nil, err
	}
	ug := tu.finish(r, o[NF:])
	upT, gT := ug[:NF], ug[NF:]

	// Round 14: silu(g)·u = sel·fine·u + pos·g·u at scale 2F, in one round
	// (two triple products sharing the factor u, spec §6.3), then W2 and
	// the residual at 3F.
	m3, err := r.readMul3(NF)
	if err != nil {
		return nil, nil, err
	}
	if o, err = r.open(ctx, m3.mask(ssel, so[0], spos, gT, upT)); err != nil {
		return nil, nil, err
	}
	act := m3.finish(r, o)
	out := matvecRows(lw.w2, act, D, F, n)
	for i := range out {
		out[i] += hres[i] << (2 * Frac)
	}
	cache := make([]uint64, 0, 4*n*KV)
	for row := 0; row < n; row++ {
		cache = append(cache, Kt[row*KV:(row+1)*KV]...)
		cache = append(cache, Vt[row*KV:(row+1)*KV]...)
		cache = append(cache, btm[row*KV:(row+1)*KV]...)
		cache = append(cache, dtm[row*KV:(row+1)*KV]...)
	}
	return out, cache, nil
}

// normIn is the input x of an RMSNorm on shares, n rows of d values, as a
// public part X and this party's shares of the rest y = x − X, which the
// dealer knows (spec §6.10): either a fresh mask a, X = x − a opened by the
// norm itself (openNormIn), or, when x is the output of a truncation,
// y = −[R >> s] + κ·[R_63] with κ public from the truncation's opening
// (truncNormIn), and no opening of its own.
type normIn struct {
	n, d int
	X    []uint64
	// parts are the shares of y's dealer-known parts m_p, coefs their
	// public coefficients (nil: 1): y = Σ_p coefs[p]·parts[p].
	parts, coefs [][]uint64
	// sumY2 is [Σ y²] per row.
	sumY2 []uint64
}

// openNormIn opens x − a for shares x of n rows (one round: spec §7's
// N1).
func openNormIn(ctx context.Context, r *run, x []uint64, n int) (*normIn, error) {
	a2, err := r.src.next(len(x))
	if err != nil {
		return nil, err
	}
	sa, err := r.src.next(n)
	if err != nil {
		return nil, err
	}
	m := make([]uint64, len(x))
	for i := range m {
		m[i] = x[i] - a2[i]
	}
	e2, err := r.open(ctx, m)
	if err != nil {
		return nil, err
	}
	return &normIn{n: n, d: len(x) / n, X: e2, parts: [][]uint64{a2}, coefs: [][]uint64{nil}, sumY2: sa}, nil
}

// truncNormIn takes a truncation's output (g, opened c) as the input of
// the norm that follows it, with no round (spec §6.10): x = X − ρ + κ·τ,
// ρ = [R >> s], τ = [R_63], and Σ y² = [Σ ρ²] − 2·Σ κ·[ρ·τ] (κ² = 2^(128−2s)
// vanishes mod 2^64 for s ≤ 32), from the dealt [Σ ρ²] per row and [ρ·τ].
func truncNormIn(r *run, g *truncG, c []uint64, n int) (*normIn, error) {
	if g.shift > 32 {
		return nil, fmt.Errorf("mpc: internal error: a fused truncation by %d bits", g.shift)
	}
	srho, err := r.src.next(n)
	if err != nil {
		return nil, err
	}
	rt, err := r.src.next(len(c))
	if err != nil {
		return nil, err
	}
	X, kappa := g.split(c)
	neg := make([]uint64, len(c))
	for i := range neg {
		neg[i] = ^uint64(0) // −1
	}
	d := len(c) / n
	for i, k := range kappa {
		srho[i/d] -= 2 * k * rt[i]
	}
	return &normIn{n: n, d: d, X: X, parts: [][]uint64{g.rs, g.r63}, coefs: [][]uint64{neg, kappa}, sumY2: srho}, nil
}

// share returns this party's share of y_i.
func (in *normIn) share(i int) uint64 {
	var v uint64
	for p, m := range in.parts {
		if in.coefs[p] == nil {
			v += m[i]
		} else {
			v += in.coefs[p][i] * m[i]
		}
	}
	return v
}

// normShares returns shares of x_r * rstd(x_r) at scale 2*Frac for the n
// rows x_r of in (scale Frac), without the norm's weights (they are folded
// into the next matrices): two rounds (spec §7 rounds 9-10) after x's
// opening or truncation.
func normShares(ctx context.Context, r *run, tb *tables, in *normIn, n int) ([]uint64, error) {
	var o []uint64
	D := in.d
	// Sum of squares of each row at scale 2F: Σ (X + y)² = Σ X² + 2·Σ X·y + Σ y².
	ss := make([]uint64, n)
	for row := range ss {
		var acc, pubSS uint64
		for i := row * D; i < (row+1)*D; i++ {
			pubSS += in.X[i] * in.X[i]
			acc += 2 * in.X[i] * in.share(i)
		}
		ss[row] = acc + in.sumY2[row] + r.pub(pubSS)
	}

	// Round 11: rstd = 1/sqrt(ss/D + eps) by the wide LUT (its level
	// selectors in the same round, §6.7).
	qs := tb.par.rsqrtSpecs()
	rsG := make([]*lutG, len(qs))
	m9 := make([]uint64, 0, len(qs)*n)
	var err error
	for k, spec := range qs {
		if rsG[k], err = r.readLUT(n, spec); err != nil {
			return nil, err
		}
		m9 = append(m9, rsG[k].mask(r, ss)...)
	}
	if o, err = r.open(ctx, m9); err != nil {
		return nil, err
	}
	rsSel, err := wideFinish(r, rsG, o, tb.rsqrtT, n)
	if err != nil {
		return nil, err
	}
	// Round 12: hn = h·rstd = h·Σ_k sel_k·val_k at scale 2F, the level
	// select and the product with h = X + y in one round (spec §6.7).
	g, err := r.readSelMul(len(qs), n, n*D, len(in.parts))
	if err != nil {
		return nil, err
	}
	if o, err = r.open(ctx, g.mask(rsSel[0], rsSel[1])); err != nil {
		return nil, err
	}
	_, hn := g.finish(r, o, in.X, in.parts, in.coefs, func(i int) int { return i / D })
	return hn, nil
}

// wideFinish evaluates the levels of a wide-range LUT and returns the
// per-level selector weights w_k (scale 0) and values (scale F), each
// len(levels)*m long, level-major, from the levels' opened values, without
// a round of its own (spec §6.7, version 7).
//
// Level k >= 1 also yields, by the comparison keys of levelCmp evaluated at
// its opening, P_k = [x < threshold(k-1)], exact up to the carry of the
// bits below the level's shift (x just below the threshold may read as
// above it, and then takes level k, whose window holds it). The thresholds
// are 2^wideStep apart, so at most one P_k is off and the P_k are
// monotone: w_k = P_{k+1} - P_k with P_0 = 0 and P_K = 1 is one-hot.
// (Before version 7 the level's indicator was read from its 10-bit window,
// which wraps above it, and a round of count lookups made it monotone.)
func wideFinish(r *run, gs []*lutG, opened []uint64, tabs []wideLevel, m int) ([2][]uint64, error) {
	K := len(gs)
	if len(opened) != K*m {
		return [2][]uint64{}, fmt.Errorf("mpc: wide LUT: %d opened values, want %d", len(opened), K*m)
	}
	specs := make([]lutSpec, K)
	for k, g := range gs {
		specs[k] = g.spec
	}
	vals := make([]uint64, 0, K*m)
	P := make([]uint64, 0, (K-1)*m) // P_k for k = 1..K-1, level-major
	for k, g := range gs {
		lv := tabs[k]
		c := opened[k*m : (k+1)*m]
		o, err := g.finish(c, lv.slope, lv.val)
		if err != nil {
			return [2][]uint64{}, err
		}
		vals = append(vals, o[0]...)
		if k == 0 {
			continue
		}
		lc, err := r.readCmp(m, levelCmp(specs, k))
		if err != nil {
			return [2][]uint64{}, err
		}
		below, _, err := lc.finish(r, c)
		if err != nil {
			return [2][]uint64{}, err
		}
		P = append(P, below...)
	}
	sel := make([]uint64, K*m)
	for k := 0; k < K; k++ {
		for i := 0; i < m; i++ {
			var hi, lo uint64
			if k == K-1 {
				hi = r.pub(1)
			} else {
				hi = P[k*m+i] // P_{k+1}
			}
			if k > 0 {
				lo = P[(k-1)*m+i] // P_k
			}
			sel[k*m+i] = hi - lo
		}
	}
	return [2][]uint64{sel, vals}, nil
}
