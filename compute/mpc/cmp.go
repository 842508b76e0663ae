package mpc

import (
	"fmt"

	"github.com/unfed/unfed/compute/mpc/dpf"
)

// The masked window comparison (spec/05-mpc.md §6.9): the selector that
// tells an exp or SiLU input inside its fine lookup's window from one
// outside it. It reads a coarse window of the value the fine lookup opened,
// c = x + R (+ the fine lookup's public offset): w = (c >> Shift) - rho mod
// 2^Bits, rho the same window of R, is floor(x / 2^Shift) or one more (the
// carry of the bits below), read as signed. With one comparison key for
// [v < rho] (dpf.AppendGenLess) the parties evaluate, at three public
// points, shares of sel = [A <= w < B] and pos = [B <= w < 2^(Bits-1)]:
// for y = (w + 2^(Bits-1)) mod 2^Bits, u' = (u + 2^(Bits-1)) mod 2^Bits and
// any e in [0, 2^Bits],
//
//	[y < e] = DCF((u' - e) mod 2^Bits) - DCF(u') + [u' < e]
//
// (the last term is public), so sel and pos need DCF at u' - A', u' - B'
// and u', A' = A + 2^(Bits-1), B' = B + 2^(Bits-1). It replaces a lookup
// over the whole coarse window (2^Bits outputs evaluated and two table dot
// products per input) by three evaluations of Bits levels each, and opens
// nothing of its own.

// cmpSpec is a window comparison that goes with a fine lookup.
type cmpSpec struct {
	Bits  int
	Shift uint
	// Off is the public offset the fine lookup adds to its opened value
	// (fix(Offset, InScale)): c - Off = x + R.
	Off uint64
	// A and B bound the signed window indices w whose whole input range
	// [(w-1) * step, (w+1) * step) lies where the fine lookup is exact:
	// sel = [A <= w < B]; pos = [w >= B].
	A, B int
}

// cmpFor returns the comparison over the coarse window coarse (no offset,
// signed) that goes with the interpolated fine lookup fine. An index w
// stands for an input in [(w-1)*st, (w+1)*st), st the coarse step; the
// fine lookup is exact on [lo, hi], its signed window less its top step,
// whose index may be the (wrapped) next one (spec §6.8).
func cmpFor(coarse, fine lutSpec) cmpSpec {
	st := coarse.step()
	lo := fine.point(1 << uint(fine.Bits-1)) // the signed window's lowest entry
	hi := lo + float64(int(1)<<uint(fine.Bits)-1)*fine.step()
	half := 1 << uint(coarse.Bits-1)
	a, b := half, -half
	for i := -half; i < half; i++ {
		x := float64(i) * st
		if x-st >= lo && x+st <= hi {
			a, b = min(a, i), i+1
		}
	}
	return cmpSpec{Bits: coarse.Bits, Shift: coarse.Shift, Off: fix(fine.Offset, fine.InScale), A: a, B: b}
}

// expCmp and siluCmp are the comparisons of softmax's exp and of SiLU.
func (p Params) expCmp() cmpSpec  { return cmpFor(coarseSpec(3*Frac, expCoarseBits), p.expSpec()) }
func (p Params) siluCmp() cmpSpec { return cmpFor(coarseSpec(3*Frac, siluCoarseBits), p.siluSpec()) }

// levelCmp is the comparison that gives level k >= 1 of a wide lookup
// (spec §6.7) its selector P_k = [x < threshold(k-1)], read from level k's
// own opening c = x + R_k: the index w of x at level k's shift, over a
// domain twice as wide as the top level's window at that shift (no input
// of the lookup's range wraps), with A = -2^(Bits-1) and B =
// threshold(k-1) / step(k) (2^(WideBits-2-wideStep), 16 by default), so
// that sel = [w < B]. The threshold is the one level k's indicator table
// held before version 7, now without its wrap-around.
func levelCmp(specs []lutSpec, k int) cmpSpec {
	s, top := specs[k], specs[len(specs)-1]
	bits := int(top.Shift) + top.Bits - int(s.Shift) + 2 + levelCmpBits
	b := wideThreshold(specs[k-1]) / s.step()
	return cmpSpec{Bits: bits, Shift: s.Shift, Off: fix(s.Offset, s.InScale), A: -(1 << uint(bits-1)), B: int(b)}
}

// levelCmpBits is added to levelCmp's domain: 0 except in the test that
// shows too narrow a domain fails (TestWideLookup).
var levelCmpBits int

// dealCmp deals the comparison keys of s for the masks R of the fine
// lookup it goes with: one key for [v < rho] per input.
func dealCmp(d *dealing, R []uint64, s cmpSpec) {
	mask := uint64(1)<<uint(s.Bits) - 1
	for _, v := range R {
		d.cmpKeys((v>>s.Shift)&mask, 1, s.Bits)
	}
}

type cmpG struct {
	spec cmpSpec
	keys []dpf.Key
}

func (r *run) readCmp(n int, s cmpSpec) (*cmpG, error) {
	keys, err := r.keys.cmp(n, s.Bits)
	if err != nil {
		return nil, err
	}
	return &cmpG{spec: s, keys: keys}, nil
}

// finish returns shares of sel and pos (scale 0) for the values c the fine
// lookup opened.
func (g *cmpG) finish(r *run, c []uint64) (sel, pos []uint64, err error) {
	s := g.spec
	if len(c) != len(g.keys) {
		return nil, nil, fmt.Errorf("mpc: comparison of %d values with %d keys", len(c), len(g.keys))
	}
	n := uint64(1) << uint(s.Bits)
	mask, half := n-1, n/2
	ap, bp := uint64(int64(s.A)+int64(half)), uint64(int64(s.B)+int64(half))
	xs := make([]uint64, 3*len(c))
	which := make([]int32, 3*len(c))
	u2 := make([]uint64, len(c))
	for i, cv := range c {
		u := ((cv-s.Off)>>s.Shift + half) & mask
		u2[i] = u
		xs[3*i], xs[3*i+1], xs[3*i+2] = (u-ap)&mask, (u-bp)&mask, u
		which[3*i], which[3*i+1], which[3*i+2] = int32(i), int32(i), int32(i)
	}
	out := make([]uint64, len(xs))
	if err := dpf.EvalLess(g.keys, which, xs, out); err != nil {
		return nil, nil, fmt.Errorf("%w: comparison key: %w", ErrMalformed, err)
	}
	lt := func(u, e uint64) uint64 {
		if u < e {
			return 1
		}
		return 0
	}
	sel, pos = make([]uint64, len(c)), make([]uint64, len(c))
	for i, u := range u2 {
		dA, dB, d0 := out[3*i], out[3*i+1], out[3*i+2]
		sel[i] = dB - dA + r.pub(lt(u, bp)-lt(u, ap))
		pos[i] = d0 - dB + r.pub(1-lt(u, bp))
	}
	return sel, pos, nil
}
