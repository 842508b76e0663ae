package mpc

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/unfed/unfed/compute/mpc/mpctest"
)

// cmpOnce deals the fine lookup of fine and its comparison s for the inputs
// xs (reals at fine.InScale), runs both parties on random shares and
// returns the reconstructed sel and pos.
func cmpOnce(t *testing.T, fine lutSpec, s cmpSpec, xs []float64) (sel, pos []uint64) {
	t.Helper()
	n := len(xs)
	dl, err := newDealing(mpctest.NewRand(uint64(n)+3), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	dealCmp(dl, dealLUT(dl, n, fine), s)
	if dl.err != nil {
		t.Fatal(dl.err)
	}
	ka, err := decodeKeys(dl.keysA, 0)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := decodeKeys(dl.keysB, 1)
	if err != nil {
		t.Fatal(err)
	}
	ra := &run{party: 0, src: newPRGSource(dl.seedA[:]), keys: &keySource{keys: ka}}
	rb := &run{party: 1, src: &bufSource{b: dl.b}, keys: &keySource{keys: kb, ys: precompute(kb, 0, new([]uint64), nil)}}
	var ca, cb *cmpG
	var ga, gb *lutG
	for _, p := range []struct {
		r  *run
		g  **lutG
		cg **cmpG
	}{{ra, &ga, &ca}, {rb, &gb, &cb}} {
		if *p.g, err = p.r.readLUT(n, fine); err != nil {
			t.Fatal(err)
		}
		if *p.cg, err = p.r.readCmp(n, s); err != nil {
			t.Fatal(err)
		}
		if err := p.r.keys.done(); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	xa, xb := make([]uint64, n), make([]uint64, n)
	for i, x := range xs {
		xa[i] = r.Uint64()
		xb[i] = fix(x, fine.InScale) - xa[i]
	}
	ma, mb := ga.mask(ra, xa), gb.mask(rb, xb)
	c := make([]uint64, n)
	for i := range c {
		c[i] = ma[i] + mb[i]
	}
	sa, pa, err := ca.finish(ra, c)
	if err != nil {
		t.Fatal(err)
	}
	sb, pb, err := cb.finish(rb, c)
	if err != nil {
		t.Fatal(err)
	}
	sel, pos = make([]uint64, n), make([]uint64, n)
	for i := range sel {
		sel[i], pos[i] = sa[i]+sb[i], pa[i]+pb[i]
	}
	return sel, pos
}

// TestWindowComparison checks the comparison gate of spec §6.9 for exp and
// SiLU: sel and pos are 0 or 1, never both; sel is 1 only where the fine
// lookup is exact, and is 1 everywhere well inside the fine window; pos is 1
// exactly for inputs above it and 0 for every negative input, over the whole
// coarse window ([-1024, 1024 - 2 steps)), its edges and the fine window's edges.
func TestWindowComparison(t *testing.T) {
	par := Params{}.withDefaults()
	for _, c := range []struct {
		name string
		fine lutSpec
		cmp  cmpSpec
	}{{"exp", par.expSpec(), par.expCmp()}, {"silu", par.siluSpec(), par.siluCmp()}} {
		t.Run(c.name, func(t *testing.T) {
			fine := c.fine
			lo := fine.point(1 << uint(fine.Bits-1))
			hi := lo + float64(int(1)<<uint(fine.Bits)-1)*fine.step()
			st := math.Ldexp(1, int(c.cmp.Shift)-int(fine.InScale)) // the coarse step
			if !(lo+2*st <= 0 && hi-2*st >= 0) || c.cmp.A >= c.cmp.B {
				t.Fatalf("fine window [%g, %g], coarse step %g, sel [%d, %d): no room", lo, hi, st, c.cmp.A, c.cmp.B)
			}
			// The coarse window holds [-1024, 1024 - 2 st): an index one
			// above its top wraps to the most negative.
			top := 1024 - 2*st - 1e-3
			var xs []float64
			r := rand.New(rand.NewPCG(1, 2))
			for i := 0; i < 3000; i++ {
				xs = append(xs, (r.Float64()*2-1)*top)
			}
			for i := 0; i < 2000; i++ {
				xs = append(xs, (r.Float64()*2-1)*(hi+4*st))
			}
			for _, e := range []float64{lo, hi, 0, -top, top, lo + 2*st, hi - 2*st, float64(c.cmp.A) * st, float64(c.cmp.B) * st} {
				xs = append(xs, e, e-1e-4, e+1e-4)
			}
			sel, pos := cmpOnce(t, fine, c.cmp, xs)
			var inner, innerSel int
			for i, x := range xs {
				s, p := sel[i], pos[i]
				if s > 1 || p > 1 || s+p > 1 {
					t.Fatalf("x = %g: sel %d pos %d", x, int64(s), int64(p))
				}
				if s == 1 && (x < lo || x > hi) {
					t.Fatalf("x = %g outside the fine window [%g, %g] selected", x, lo, hi)
				}
				if p == 1 && x <= hi-2*st {
					t.Fatalf("x = %g flagged above the fine window (top %g)", x, hi)
				}
				if p == 0 && s == 0 && x > 0 {
					t.Fatalf("x = %g > 0 neither selected nor above", x)
				}
				if x >= lo+2*st && x <= hi-2*st {
					inner++
					if s == 1 {
						innerSel++
					}
				}
			}
			if inner == 0 || innerSel != inner {
				t.Fatalf("%d of %d inputs well inside the fine window selected", innerSel, inner)
			}
		})
	}
}
