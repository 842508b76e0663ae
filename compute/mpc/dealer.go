package mpc

import (
	"fmt"
	"io"

	"github.com/unfed/unfed/compute/mpc/dpf"
)

// Dealer is the client's side of one session: it shares token ids and deals
// the correlated randomness for every step. It needs the model's shape only,
// never its weights; nothing it produces depends on the token except the
// token's DPF key pair (spec §5). Not safe for concurrent use.
type Dealer struct {
	cfg   Config
	par   Params
	hash  [8]byte
	rng   io.Reader
	step  uint32
	masks []uint64 // per position: b_j | d_j (kvDim each), the fixed cache masks
	max   int
	ahead *dealt   // the next step's dealing, made by Prepare
	size  prepSize // the PREP's parts at each position
}

// dealt is the next step's correlated randomness, dealt before its token is
// known; Prep encodes it (and drops the dealing), Token consumes it.
type dealt struct {
	dl    *dealing
	masks []uint64
	sent  bool   // Prep returned its messages
	up    Upload // sizes of the PREP messages, for TokenStats
}

// NewDealer starts a session. rng must be a cryptographically secure source
// (crypto/rand.Reader in production); par must equal the parties' Params.
func NewDealer(cfg Config, par Params, rng io.Reader) (*Dealer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	par = par.withDefaults()
	return &Dealer{cfg: cfg, par: par, hash: cfg.hash(par), rng: rng, max: MaxContext, size: newPrepSize(cfg, par)}, nil
}

// Pos returns the position the next token will take.
func (d *Dealer) Pos() int { return int(d.step) }

// Upload is the byte count of one step's messages, by purpose.
type Upload struct {
	TokenKey    int // the token's DPF key
	Correlated  int // masks, triples and truncation pairs (A: a 16-byte seed)
	LUTKeys     int // DPF keys of the masked lookup tables
	Header      int // both messages' headers and length fields
	PrepA       int // PREP message sizes
	PrepB       int
	TotalA      int // PREP + STEP
	TotalB      int
	TokenKeyLen int
}

// Prep returns the PREP messages of the next step (position Pos) for party
// A and party B: its correlated randomness, which does not depend on the
// token (spec §5.1). Each party must receive its PREP before the step's
// STEP message (Token); the reference client sends the next step's PREP
// right after a STEP, while that step is in flight, so the parties can
// evaluate its lookup keys before the token is known. Calling Prep twice
// for one step is an error.
func (d *Dealer) Prep() (msgA, msgB []byte, err error) {
	if err := d.dealAhead(); err != nil {
		return nil, nil, err
	}
	a := d.ahead
	if a.sent {
		return nil, nil, fmt.Errorf("mpc: PREP for step %d already taken", d.step)
	}
	dl := a.dl
	ma := &stepMsg{kind: kindPrep, role: 0, cfgHash: d.hash, step: d.step, pos: d.step}
	mb := &stepMsg{kind: kindPrep, role: 1, cfgHash: d.hash, step: d.step, pos: d.step}
	msgA, msgB, err = dl.prep(ma, mb)
	if err != nil {
		return nil, nil, err
	}
	a.up = Upload{Correlated: len(dl.b), LUTKeys: len(dl.keysB), PrepA: len(msgA), PrepB: len(msgB)}
	a.sent, a.dl = true, nil
	return msgA, msgB, nil
}

// Token shares the next token (at position Pos) and returns the STEP
// messages for party A and party B. The step's PREP (Prep) must have been
// taken first.
func (d *Dealer) Token(token int) (msgA, msgB []byte, err error) {
	msgA, msgB, _, err = d.TokenStats(token)
	return msgA, msgB, err
}

// TokenStats is Token that also reports the size breakdown of the step's
// messages to party B, PREP included (A's differ only in carrying a seed
// instead of the shares).
func (d *Dealer) TokenStats(token int) (msgA, msgB []byte, up Upload, err error) {
	c := d.cfg
	if token < 0 || token >= c.Vocab {
		return nil, nil, up, fmt.Errorf("mpc: token %d outside vocabulary", token)
	}
	if d.ahead == nil || !d.ahead.sent {
		return nil, nil, up, fmt.Errorf("mpc: no PREP taken for step %d: call Prep and deliver it first", d.step)
	}
	ka, kb, err := dpf.AppendGen(nil, nil, uint64(token), 1, dpf.BitsFor(c.Vocab), d.rng)
	if err != nil {
		return nil, nil, up, err
	}
	ma := &stepMsg{kind: kindStep, role: 0, cfgHash: d.hash, step: d.step, pos: d.step, tokenKey: ka}
	mb := &stepMsg{kind: kindStep, role: 1, cfgHash: d.hash, step: d.step, pos: d.step, tokenKey: kb}
	msgA, msgB = ma.encode(), mb.encode()
	up = d.ahead.up
	d.masks = append(d.masks, d.ahead.masks...)
	d.ahead = nil
	d.step++
	up.TokenKey, up.TokenKeyLen = len(kb), len(kb)
	up.TotalA, up.TotalB = up.PrepA+len(msgA), up.PrepB+len(msgB)
	up.Header = up.TotalB - up.TokenKey - up.Correlated - up.LUTKeys
	return msgA, msgB, up, nil
}

// dealAhead deals the correlated randomness of the next step (position
// Pos), without encoding it: nothing but the token's DPF key depends on the
// token (spec §5.2). Calling it again before Token does nothing.
func (d *Dealer) dealAhead() error {
	if d.ahead != nil {
		return nil
	}
	if int(d.step) >= d.max {
		return fmt.Errorf("%w at %d positions", ErrContextFull, d.step)
	}
	shares, keys := d.size.at(int(d.step))
	dl, err := newDealing(d.rng, shares, keys)
	if err != nil {
		return err
	}
	masks := d.deal(dl)
	if dl.err != nil {
		return dl.err
	}
	d.ahead = &dealt{dl: dl, masks: masks}
	return nil
}

// deal mirrors Party.circuit (circuit.go) value for value and returns the
// new position's cache masks b_t | d_t.
func (d *Dealer) deal(dl *dealing) []uint64 {
	return dealBlock(dl, d.cfg, d.par, int(d.step), 1, d.masks)
}

// dealBlock mirrors block (circuit.go) value for value for the n positions
// t0..t0+n-1, with the layer's cache masks of the earlier positions (b_j |
// d_j per position), and returns the new positions' masks, b_t | d_t per row.
func dealBlock(dl *dealing, c Config, par Params, t0, n int, masks []uint64) []uint64 {
	D, Q, KV, H, hd := c.Dim, c.qDim(), c.kvDim(), c.NHeads, c.HeadDim
	bt := batch{t0: t0, n: n, heads: H}
	NS, NH, NF := bt.scores(), n*H, n*c.FFN
	group := H / c.NKVHeads
	// Round 1.
	dealTrunc(dl, n*(Q+KV), 2*Frac)
	dealTrunc(dl, n*KV, 2*Frac)
	// Round 2.
	a := dl.uniform(n * Q)
	bm := dl.uniform(n * KV)
	dm := dl.uniform(n * KV)
	maskAt := func(j int) (b, d []uint64) {
		if j >= t0 {
			i := j - t0
			return bm[i*KV : (i+1)*KV], dm[i*KV : (i+1)*KV]
		}
		m := masks[j*2*KV : (j+1)*2*KV]
		return m[:KV], m[KV:]
	}
	// [(R(t0+r−j)·a_{r,h})·b_j] per score: RoPE by the relative position
	// in the scores (spec §4.2).
	ab := make([]uint64, NS)
	rot := ropeTable(c, t0+n)
	ra := make([]uint64, hd)
	for row := 0; row < n; row++ {
		L, base := bt.L(row), bt.off(row)
		for j := 0; j < L; j++ {
			bj, _ := maskAt(j)
			cos, sin := rot[t0+row-j][0], rot[t0+row-j][1]
			for h := 0; h < H; h++ {
				g := h / group
				copy(ra, a[row*Q+h*hd:row*Q+(h+1)*hd])
				rope(c, ra, 1, cos, sin)
				var acc uint64
				for i := 0; i < hd; i++ {
					acc += ra[i] * bj[g*hd+i]
				}
				ab[base+h*L+j] = acc
			}
		}
	}
	dl.share(a)
	dl.shareKept(bm)
	dl.shareKept(dm)
	dl.share(ab)
	// Rounds 3-4.
	dl.yield()
	dealCmp(dl, dealLUT(dl, NS, par.expSpec()), par.expCmp())
	dealMul(dl, NS)
	// Round 5.
	dl.yield()
	gm := dl.uniform(NS)
	dl.share(gm)
	rs := par.recipSpecs()
	dealWide(dl, NH, rs)
	// Then the select fused with e·(1/S).
	rh := make([]int, NS)
	for row := 0; row < n; row++ {
		L, base := bt.L(row), bt.off(row)
		for h := 0; h < H; h++ {
			for j := 0; j < L; j++ {
				rh[base+h*L+j] = row*H + h
			}
		}
	}
	dealSelMul(dl, len(rs), NH, [][]uint64{gm}, func(i int) int { return rh[i] })
	dl.yield()
	// Round 7: the truncation of p and the products for p·v with its
	// parts (§6.10).
	R7 := dealTrunc(dl, NS, 2*Frac)
	rd := make([]uint64, n*Q)
	td := make([]uint64, NS*hd)
	for row := 0; row < n; row++ {
		L, base := bt.L(row), bt.off(row)
		for j := 0; j < L; j++ {
			_, dj := maskAt(j)
			for h := 0; h < H; h++ {
				g := h / group
				idx := base + h*L + j
				rho, tau := R7[idx]>>(2*Frac), R7[idx]>>63
				for i := 0; i < hd; i++ {
					rd[row*Q+h*hd+i] += rho * dj[g*hd+i]
					td[idx*hd+i] = tau * dj[g*hd+i]
				}
			}
		}
	}
	dl.share(rd)
	dl.share32(td)
	dl.yield()
	// Round 8, its truncation the norm's input (§6.10).
	dealNormTrunc(dl, par, D, n, dealTrunc(dl, n*D, 2*Frac), 2*Frac)
	// Rounds 13-14.
	dl.yield()
	dealCmp(dl, dealLUT(dl, NF, par.siluSpec()), par.siluCmp())
	dealTrunc(dl, 2*NF, 2*Frac)
	dealMul3(dl, NF)
	cur := make([]uint64, 0, n*2*KV)
	for row := 0; row < n; row++ {
		cur = append(cur, bm[row*KV:(row+1)*KV]...)
		cur = append(cur, dm[row*KV:(row+1)*KV]...)
	}
	return cur
}

// dealNorm mirrors openNormIn and normShares (circuit.go) for n rows of d
// values.
func dealNorm(dl *dealing, par Params, d, n int) {
	a2 := dl.uniform(n * d)
	sa := make([]uint64, n)
	for i, v := range a2 {
		sa[i/d] += v * v
	}
	dl.share(a2)
	dl.share(sa)
	dealNormRest(dl, par, d, n, [][]uint64{a2})
}

// dealNormTrunc mirrors truncNormIn and normShares: the norm of the output
// of a truncation by shift whose masks R dealTrunc returned (spec §6.10).
func dealNormTrunc(dl *dealing, par Params, d, n int, R []uint64, shift uint) {
	dealNormRest(dl, par, d, n, dealTruncNormIn(dl, d, n, R, shift))
}

// dealTruncNormIn mirrors truncNormIn: it deals [Σ ρ²] per row and [ρ·τ]
// per element for the truncation masks R, and returns the mask parts
// ρ = R >> shift and τ = R_63.
func dealTruncNormIn(dl *dealing, d, n int, R []uint64, shift uint) [][]uint64 {
	rho, tau := make([]uint64, len(R)), make([]uint64, len(R))
	srho, rt := make([]uint64, n), make([]uint64, len(R))
	for i, v := range R {
		rho[i], tau[i] = v>>shift, v>>63
		srho[i/d] += rho[i] * rho[i]
		rt[i] = rho[i] * tau[i]
	}
	dl.share(srho)
	dl.share(rt)
	return [][]uint64{rho, tau}
}

// dealNormRest deals normShares' wide lookup and its select fused with the
// product h·rstd, for h's mask parts.
func dealNormRest(dl *dealing, par Params, d, n int, parts [][]uint64) {
	qs := par.rsqrtSpecs()
	dealWide(dl, n, qs)
	dealSelMul(dl, len(qs), n, parts, func(i int) int { return i / d })
}

// dealWide deals the m lookups of each level of a wide lookup (spec §6.7),
// then, for each level k >= 1, the comparison keys of its level selector
// P_k = [x < threshold(k-1)], read from level k's own opening (levelCmp).
func dealWide(dl *dealing, m int, specs []lutSpec) {
	R := make([][]uint64, len(specs))
	for k, s := range specs {
		R[k] = dealLUT(dl, m, s)
	}
	for k := 1; k < len(specs); k++ {
		dealCmp(dl, R[k], levelCmp(specs, k))
	}
}
