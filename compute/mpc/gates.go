package mpc

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/unfed/unfed/compute/mpc/dpf"
)

// The gates of spec §6. Each has a dealer half (deal*) that draws the masks
// and hands out their shares, and a party half (read* then mask/finish) that
// consumes the same values in the same order. Opened values are always
// x + mask with a fresh uniform mask in Z_2^64 (or a fixed per-position mask
// opened once, see the KV cache in party.go).

// run is one party's state while executing one step.
type run struct {
	party int // 0 = A, 1 = B
	step  uint32
	round uint16
	src   source
	keys  *keySource
	peer  Peer
	// version is the protocol version of the peer messages: Version (the
	// zero value) for the entry stage, StageVersion in a stage.
	version byte
	// stats
	opened int
	wait   time.Duration // blocked on the peer's openings
}

// open exchanges this party's shares of the masked values with the peer and
// returns the opened values. One call is one round (spec §7).
func (r *run) open(ctx context.Context, vals []uint64) ([]uint64, error) {
	r.round++
	msg := encodePeer(r.ver(), r.step, r.round, vals)
	// Sent here, not on a goroutine of its own: Send does not wait for the
	// peer (Peer), and a sender goroutine cost a spawn and a handoff per
	// round, and, when the peer's message was already in, put this party's
	// next compute ahead of the write of its own opening (measured on the
	// testnet, docs/perf/confidential.md § The round's wake-up chain).
	if err := r.peer.Send(ctx, msg); err != nil {
		return nil, fmt.Errorf("mpc: send round %d: %w", r.round, err)
	}
	t0 := time.Now()
	in, rerr := r.peer.Recv(ctx)
	r.wait += time.Since(t0)
	if rerr != nil {
		return nil, fmt.Errorf("mpc: receive round %d: %w", r.round, rerr)
	}
	theirs, err := decodePeer(in, r.ver(), r.step, r.round, len(vals))
	if err != nil {
		return nil, err
	}
	out := make([]uint64, len(vals))
	for i := range vals {
		out[i] = vals[i] + theirs[i]
	}
	r.opened += len(vals)
	return out, nil
}

func (r *run) ver() byte {
	if r.version == 0 {
		return Version
	}
	return r.version
}

func (r *run) pub(v uint64) uint64 {
	if r.party == 0 {
		return v
	}
	return 0
}

// --- truncation (spec §6.2) ---

type truncG struct {
	r, rs, r63 []uint64
	shift      uint
}

// dealTrunc deals n truncation pairs and returns their masks R (a
// truncation fused with the product that follows it, §6.10, deals more
// products of them).
func dealTrunc(d *dealing, n int, shift uint) []uint64 {
	R := d.uniform(n)
	rs := make([]uint64, n)
	r63 := make([]uint64, n)
	for i, v := range R {
		rs[i], r63[i] = v>>shift, v>>63
	}
	d.share(R)
	d.share(rs)
	d.share(r63)
	return R
}

func (r *run) readTrunc(n int, shift uint) (*truncG, error) {
	g := &truncG{shift: shift}
	var err error
	if g.r, err = r.src.next(n); err != nil {
		return nil, err
	}
	if g.rs, err = r.src.next(n); err != nil {
		return nil, err
	}
	if g.r63, err = r.src.next(n); err != nil {
		return nil, err
	}
	return g, nil
}

// mask returns this party's share of x + 2^62 + R.
func (g *truncG) mask(r *run, x []uint64) []uint64 {
	out := make([]uint64, len(x))
	for i := range x {
		out[i] = x[i] + g.r[i] + r.pub(1<<62)
	}
	return out
}

// finish returns shares of x >> shift (arithmetic, error at most one unit in
// the last place) given the opened c = x + 2^62 + R. Requires |x| < 2^62.
func (g *truncG) finish(r *run, c []uint64) []uint64 {
	s := g.shift
	out := make([]uint64, len(c))
	for i, cv := range c {
		v := -g.rs[i]
		if cv>>63 == 0 {
			v += g.r63[i] << (64 - s)
		}
		v += r.pub(cv>>s - 1<<(62-s))
		out[i] = v
	}
	return out
}

// split returns, for the opened c, the public part X = (c >> s) − 2^(62−s)
// of the truncated value and the public κ = (1 − c_63)·2^(64−s), so that
// finish's result is X − [R >> s] + κ·[R_63] (spec §6.10): a product that
// follows the truncation takes its factor in this form instead of opening
// it again.
func (g *truncG) split(c []uint64) (X, kappa []uint64) {
	s := g.shift
	X, kappa = make([]uint64, len(c)), make([]uint64, len(c))
	for i, cv := range c {
		X[i] = cv>>s - 1<<(62-s)
		if cv>>63 == 0 {
			kappa[i] = 1 << (64 - s)
		}
	}
	return X, kappa
}

// --- Beaver product (spec §6.3) ---

type mulG struct{ a, b, ab []uint64 }

func dealMul(d *dealing, n int) {
	a, b := d.uniform(n), d.uniform(n)
	ab := make([]uint64, n)
	for i := range ab {
		ab[i] = a[i] * b[i]
	}
	d.share(a)
	d.share(b)
	d.share(ab)
}

func (r *run) readMul(n int) (*mulG, error) {
	g := &mulG{}
	var err error
	if g.a, err = r.src.next(n); err != nil {
		return nil, err
	}
	if g.b, err = r.src.next(n); err != nil {
		return nil, err
	}
	if g.ab, err = r.src.next(n); err != nil {
		return nil, err
	}
	return g, nil
}

// mask returns shares of x - a followed by y - b.
func (g *mulG) mask(x, y []uint64) []uint64 {
	out := make([]uint64, 2*len(x))
	for i := range x {
		out[i] = x[i] - g.a[i]
		out[len(x)+i] = y[i] - g.b[i]
	}
	return out
}

// finish returns shares of x*y from the opened (x-a, y-b).
func (g *mulG) finish(r *run, ef []uint64) []uint64 {
	n := len(g.a)
	out := make([]uint64, n)
	for i := range out {
		e, f := ef[i], ef[n+i]
		out[i] = r.pub(e*f) + e*g.b[i] + f*g.a[i] + g.ab[i]
	}
	return out
}

// --- two triple products with a common factor, one round (spec §6.3) ---

// mul3G computes x1·y1·z + x2·y2·z in one opening: the five factors are
// opened masked (x1 − a1, y1 − b1, x2 − a2, y2 − b2, z − c) and the
// dealer deals every product of the masks that the expansion needs.
type mul3G struct {
	a1, b1, a2, b2, c     []uint64
	a1b1, a1c, b1c, a1b1c []uint64
	a2b2, a2c, b2c, a2b2c []uint64
}

// mul3Masks lists the product of masks of one triple product dealt, in
// the order dealt: a·b, a·c, b·c, a·b·c.
func mul3Masks(a, b, c []uint64) (ab, ac, bc, abc []uint64) {
	ab, ac, bc, abc = make([]uint64, len(a)), make([]uint64, len(a)), make([]uint64, len(a)), make([]uint64, len(a))
	for i := range a {
		ab[i], ac[i], bc[i] = a[i]*b[i], a[i]*c[i], b[i]*c[i]
		abc[i] = ab[i] * c[i]
	}
	return ab, ac, bc, abc
}

func dealMul3(d *dealing, n int) {
	a1, b1, a2, b2, c := d.uniform(n), d.uniform(n), d.uniform(n), d.uniform(n), d.uniform(n)
	for _, v := range [][]uint64{a1, b1, a2, b2, c} {
		d.share(v)
	}
	p1 := [4][]uint64{}
	p1[0], p1[1], p1[2], p1[3] = mul3Masks(a1, b1, c)
	p2 := [4][]uint64{}
	p2[0], p2[1], p2[2], p2[3] = mul3Masks(a2, b2, c)
	for _, v := range append(p1[:], p2[:]...) {
		d.share(v)
	}
}

func (r *run) readMul3(n int) (*mul3G, error) {
	g := &mul3G{}
	for _, p := range []*[]uint64{&g.a1, &g.b1, &g.a2, &g.b2, &g.c,
		&g.a1b1, &g.a1c, &g.b1c, &g.a1b1c, &g.a2b2, &g.a2c, &g.b2c, &g.a2b2c} {
		var err error
		if *p, err = r.src.next(n); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// mask returns shares of x1 − a1, y1 − b1, x2 − a2, y2 − b2 and z − c, in
// that order.
func (g *mul3G) mask(x1, y1, x2, y2, z []uint64) []uint64 {
	n := len(z)
	out := make([]uint64, 0, 5*n)
	for k, v := range [][]uint64{x1, y1, x2, y2, z} {
		m := [][]uint64{g.a1, g.b1, g.a2, g.b2, g.c}[k]
		for i := range v {
			out = append(out, v[i]-m[i])
		}
	}
	return out
}

// finish returns shares of x1·y1·z + x2·y2·z from the five opened vectors:
// (X+a)(Y+b)(Z+c) = XYZ + XY·c + XZ·b + YZ·a + X·bc + Y·ac + Z·ab + abc.
func (g *mul3G) finish(r *run, o []uint64) []uint64 {
	n := len(g.c)
	X1, Y1, X2, Y2, Z := o[:n], o[n:2*n], o[2*n:3*n], o[3*n:4*n], o[4*n:5*n]
	out := make([]uint64, n)
	for i := range out {
		x1, y1, x2, y2, z := X1[i], Y1[i], X2[i], Y2[i], Z[i]
		t1 := r.pub(x1*y1*z) + x1*y1*g.c[i] + x1*z*g.b1[i] + y1*z*g.a1[i] +
			x1*g.b1c[i] + y1*g.a1c[i] + z*g.a1b1[i] + g.a1b1c[i]
		t2 := r.pub(x2*y2*z) + x2*y2*g.c[i] + x2*z*g.b2[i] + y2*z*g.a2[i] +
			x2*g.b2c[i] + y2*g.a2c[i] + z*g.a2b2[i] + g.a2b2c[i]
		out[i] = t1 + t2
	}
	return out
}

// --- a wide lookup's select times a masked factor, one round (spec §6.7) ---

// selMulG is the last round of a wide lookup (§6.7) fused with a product:
// it opens the select's Beaver products (sel_k − α_k, val_k − β_k) and
// returns shares of f = Σ_k sel_k·val_k per group and of x_i·f_grp(i) for
// a factor x = X + y whose public part X the parties know and whose rest y
// is a public combination of dealer-known masks: y_i = Σ_p κ_p,i·m_p,i
// (one part, κ = 1, for a mask opened as X = x − a; two, −[R >> s] and
// κ·[R_63], for the output of a truncation, §6.10).
type selMulG struct {
	sel      *mulG      // the K·m level products, level-major
	ya, yb   [][]uint64 // per part p: [m_p,i·α_k], [m_p,i·β_k], level-major (K × ny)
	yab      [][]uint64 // per part p: [Σ_k m_p,i·α_k·β_k]
	k, m, ny int
}

// dealSelMul deals a selMulG for K levels over m groups and the factor's
// mask parts ys (each of the factor's length), element i belonging to
// group grp(i).
func dealSelMul(d *dealing, K, m int, ys [][]uint64, grp func(int) int) {
	al, be := d.uniform(K*m), d.uniform(K*m)
	albe := make([]uint64, K*m)
	for i := range albe {
		albe[i] = al[i] * be[i]
	}
	d.share(al)
	d.share(be)
	d.share(albe)
	for _, y := range ys {
		ya, yb, yab := make([]uint64, K*len(y)), make([]uint64, K*len(y)), make([]uint64, len(y))
		for k := 0; k < K; k++ {
			for i, v := range y {
				j := k*m + grp(i)
				ya[k*len(y)+i], yb[k*len(y)+i] = v*al[j], v*be[j]
				yab[i] += v * albe[j]
			}
		}
		d.share(ya)
		d.share(yb)
		d.share(yab)
	}
}

func (r *run) readSelMul(K, m, ny, parts int) (*selMulG, error) {
	g := &selMulG{k: K, m: m, ny: ny}
	var err error
	if g.sel, err = r.readMul(K * m); err != nil {
		return nil, err
	}
	for range parts {
		ya, err := r.src.next(K * ny)
		if err != nil {
			return nil, err
		}
		yb, err := r.src.next(K * ny)
		if err != nil {
			return nil, err
		}
		yab, err := r.src.next(ny)
		if err != nil {
			return nil, err
		}
		g.ya, g.yb, g.yab = append(g.ya, ya), append(g.yb, yb), append(g.yab, yab)
	}
	return g, nil
}

// mask returns shares of sel − α followed by val − β (K·m each).
func (g *selMulG) mask(sel, val []uint64) []uint64 { return g.sel.mask(sel, val) }

// finish returns shares of f (per group) and of x_i·f_grp(i) from the
// opened o, the factor's public part X, and per part its mask shares ys[p]
// and public coefficients ks[p] (nil: 1):
// x·f = X·[f] + Σ_p κ_p·(Σ_k (S_k·V_k·[m_p] + S_k·[m_p·β_k] + V_k·[m_p·α_k]) + [Σ_k m_p·α_k·β_k]).
func (g *selMulG) finish(r *run, o, X []uint64, ys, ks [][]uint64, grp func(int) int) (f, xf []uint64) {
	K, m := g.k, g.m
	f = make([]uint64, m)
	for j, v := range g.sel.finish(r, o) {
		f[j%m] += v
	}
	xf = make([]uint64, g.ny)
	for i := range xf {
		gi := grp(i)
		v := X[i] * f[gi]
		for p, y := range ys {
			w := g.yab[p][i]
			for k := 0; k < K; k++ {
				S, V := o[k*m+gi], o[K*m+k*m+gi]
				w += S*V*y[i] + S*g.yb[p][k*g.ny+i] + V*g.ya[p][k*g.ny+i]
			}
			if ks[p] != nil {
				w *= ks[p][i]
			}
			v += w
		}
		xf[i] = v
	}
	return f, xf
}

// --- masked lookup table (spec §6.4) and interpolated lookup (§6.8) ---

type lutG struct {
	spec lutSpec
	r    []uint64
	keys []dpf.Key  // per element: the index key, or (interpolated) the vector key of (1, f_R)
	ys   [][]uint64 // the keys' evaluations made ahead (a vector key's elements one after the other), or nil
}

// dealLUT deals n lookups of s and returns their masks R (a comparison
// that goes with the lookup reuses them, cmp.go).
func dealLUT(d *dealing, n int, s lutSpec) []uint64 {
	R := d.uniform(n)
	d.share(R)
	mask := uint64(1)<<uint(s.Bits) - 1
	for _, v := range R {
		rho := (v >> s.Shift) & mask
		if s.Interp > 0 {
			d.vecKeys(rho, 1, s.frac(v), s.Bits)
		} else {
			d.dpfKeys(rho, 1, s.Bits)
		}
	}
	return R
}

// frac returns the interpolation fraction of v: the Interp bits just below
// the window.
func (s lutSpec) frac(v uint64) uint64 {
	return (v & (1<<s.Shift - 1)) >> (s.Shift - s.Interp)
}

func (r *run) readLUT(n int, s lutSpec) (*lutG, error) {
	g := &lutG{spec: s}
	var err error
	if g.r, err = r.src.next(n); err != nil {
		return nil, err
	}
	elems := 0 // a point key
	if s.Interp > 0 {
		elems = 2 // the vector key of (1, f_R)
	}
	// (decodeKeys already refused keys of the other party)
	if g.keys, g.ys, err = r.keys.lut(n, s.Bits, elems); err != nil {
		return nil, err
	}
	return g, nil
}

// mask returns shares of x + Offset + R.
func (g *lutG) mask(r *run, x []uint64) []uint64 {
	off := r.pub(fix(g.spec.Offset, g.spec.InScale))
	out := make([]uint64, len(x))
	for i := range x {
		out[i] = x[i] + g.r[i] + off
	}
	return out
}

// finish returns, for each table, shares of T[window(x)] given the opened
// c = x + Offset + R: with u = (c >> Shift) mod 2^Bits and the DPF key for
// rho = (R >> Shift) mod 2^Bits, sum_j DPF(j) * T[u - j] = T[u - rho].
//
// For an interpolated lookup slope is the slope table of tables[0], and the
// first result is T[u - rho] + (f_c - f_R) * slope[u - rho] with f_c, f_R the
// fractions of c and R (spec §6.8): f_c is public, and the vector key's
// second element (payload f_R at rho) gives f_R * slope[u - rho]. The other
// tables are read as entries.
//
// Tables come in the rotated form of rotTable, so that each product is one
// contiguous dot product.
func (g *lutG) finish(c []uint64, slope []uint64, tables ...[]uint64) ([][]uint64, error) {
	if (slope != nil) != (g.spec.Interp > 0) {
		return nil, fmt.Errorf("mpc: LUT over 2^%d: slope table given %v, interpolated %v", g.spec.Bits, slope != nil, g.spec.Interp > 0)
	}
	size := 1 << uint(g.spec.Bits)
	// With a slope, it is read right after the table it belongs to.
	list := tables
	if slope != nil {
		if len(tables) == 0 {
			return nil, fmt.Errorf("mpc: LUT over 2^%d: slope without a table", g.spec.Bits)
		}
		list = append([][]uint64{tables[0], slope}, tables[1:]...)
	}
	for _, t := range list {
		if len(t) != 2*size {
			return nil, fmt.Errorf("mpc: LUT over 2^%d: table of %d entries, want %d in rotated form", g.spec.Bits, len(t), 2*size)
		}
	}
	res := make([][]uint64, len(list))
	for t := range res {
		res[t] = make([]uint64, len(c))
	}
	elems := 1
	if slope != nil {
		elems = 2
	}
	bp := getEvalBuf(elems * size)
	defer evalBufs.Put(bp)
	buf := *bp
	// eval returns key i evaluated over its domain (a vector key's elements
	// one after the other): made ahead, or now.
	eval := func(i int) ([]uint64, error) {
		if i < len(g.ys) && g.ys[i] != nil {
			return g.ys[i], nil
		}
		if elems == 1 {
			return buf, g.keys[i].EvalAll(buf)
		}
		return buf, g.keys[i].EvalAllVec([][]uint64{buf[:size], buf[size:]})
	}
	for i, cv := range c {
		ys, err := eval(i)
		if err != nil {
			return nil, err
		}
		y := ys[:size]
		u := int(cv>>g.spec.Shift) & (size - 1)
		win := func(t []uint64) []uint64 { return t[size-u : 2*size-u] }
		t := 0
		for ; t+1 < len(list); t += 2 {
			res[t][i], res[t+1][i] = dot2U64(y, win(list[t]), win(list[t+1]))
		}
		if t < len(list) {
			res[t][i] = dotU64(y, win(list[t]))
		}
		if slope != nil {
			res[0][i] += g.spec.frac(cv)*res[1][i] - dotU64(ys[size:2*size], win(slope))
		}
	}
	if slope != nil {
		res = append(res[:1], res[2:]...)
	}
	return res, nil
}

// evalBufs holds finish's buffers for the evaluations of keys not made
// ahead (a buffer per lookup gate and step, each up to 2^Bits words per
// element, would be new memory every time).
var evalBufs sync.Pool

// getEvalBuf returns a buffer of n words from evalBufs (its old contents:
// EvalAll and EvalAllVec write every word).
func getEvalBuf(n int) *[]uint64 {
	bp, _ := evalBufs.Get().(*[]uint64)
	if bp == nil {
		bp = new([]uint64)
	}
	if cap(*bp) < n {
		*bp = make([]uint64, n)
	}
	*bp = (*bp)[:n]
	return bp
}

// rotTable returns the rotated form of a table over 2^n entries that finish
// reads: r[k] = tab[-k mod 2^n] for k < 2^(n+1), so that
// sum_j y[j] * tab[(u - j) mod 2^n] is the dot product of y with
// r[2^n - u : 2^(n+1) - u].
func rotTable(tab []uint64) []uint64 {
	size := len(tab)
	r := make([]uint64, 2*size)
	for k := range r {
		r[k] = tab[(size-k%size)%size]
	}
	return r
}
