package mpc

import (
	"errors"
	"fmt"
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
	ra, rb := dealtRuns(t, dl)
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
				// exp's over branch stands for exp(x) by exp(16): only
				// within a quarter of its top may it be chosen (a factor
				// e^(1/4) at most; an 11-bit comparison with its band
				// [14, 16) gave e^2 and flipped softmax weights).
				if c.name == "exp" && p == 1 && x < expMax-0.25 {
					t.Fatalf("x = %g flagged above the fine window: exp(%g) stands for exp(%g)", x, float64(expMax), x)
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

// wideOnce deals the wide lookup of specs (spec §6.7) for the inputs xs
// (reals at the levels' InScale), runs both parties on random shares
// through wideFinish and returns the reconstructed level selectors (level-
// major, len(specs) x len(xs)) and the values Σ_k sel_k·val_k at outScale.
func wideOnce(t *testing.T, specs []lutSpec, tabs []wideLevel, xs []float64, outScale uint) (sel []uint64, f []float64) {
	t.Helper()
	n, K := len(xs), len(specs)
	dl, err := newDealing(mpctest.NewRand(uint64(n)+5), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	dealWide(dl, n, specs)
	ra, rb := dealtRuns(t, dl)
	r := rand.New(rand.NewPCG(9, 10))
	xa, xb := make([]uint64, n), make([]uint64, n)
	for i, x := range xs {
		xa[i] = r.Uint64()
		xb[i] = fix(x, specs[0].InScale) - xa[i]
	}
	gs := [2][]*lutG{make([]*lutG, K), make([]*lutG, K)}
	var opened []uint64
	for k, s := range specs {
		for p, rr := range []*run{ra, rb} {
			if gs[p][k], err = rr.readLUT(n, s); err != nil {
				t.Fatal(err)
			}
		}
		ma, mb := gs[0][k].mask(ra, xa), gs[1][k].mask(rb, xb)
		for i := range ma {
			opened = append(opened, ma[i]+mb[i])
		}
	}
	oa, err := wideFinish(ra, gs[0], opened, tabs, n)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := wideFinish(rb, gs[1], opened, tabs, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range []*run{ra, rb} {
		if err := errors.Join(rr.keys.done(), rr.src.done()); err != nil {
			t.Fatal(err)
		}
	}
	sel = make([]uint64, K*n)
	f = make([]float64, n)
	for j := range sel {
		sel[j] = oa[0][j] + ob[0][j]
		f[j%n] += float64(int64(sel[j]*(oa[1][j]+ob[1][j]))) / math.Ldexp(1, int(outScale))
	}
	return sel, f
}

// TestWideLookup checks the wide lookups of spec §6.7 (1/S and rsqrt) over
// their whole ranges, at and around every level threshold: the level
// selectors are one-hot, the selected level's window holds x, no level
// finer than needed is skipped by more than the carry of one step, and the
// value is f(x) to within the interpolation's error. With comparison
// domains too narrow by three bits (the top inputs wrap), it fails.
func TestWideLookup(t *testing.T) {
	par := Params{}.withDefaults()
	recip := func(x float64) float64 { return 1 / x }
	cases := []struct {
		name   string
		specs  []lutSpec
		out    uint
		f, df  func(float64) float64
		lo     float64 // the smallest input of the range
		relErr float64
	}{
		{"recip", par.recipSpecs(), 2 * Frac, recip, func(x float64) float64 { return -1 / (x * x) }, 1, 0.05},
		{"rsqrt", par.rsqrtSpecs(), Frac, func(x float64) float64 { return 1 / math.Sqrt(x) },
			func(x float64) float64 { return -0.5 * math.Pow(x, -1.5) }, 1, 0.05},
	}
	check := func(t *testing.T, specs []lutSpec, tabs []wideLevel, f func(float64) float64, xs []float64, relErr float64) error {
		K := len(specs)
		sel, _ := wideOnce(t, specs, tabs, xs, 0)
		for i, x := range xs {
			level, ones := -1, 0
			for k := 0; k < K; k++ {
				switch sel[k*len(xs)+i] {
				case 0:
				case 1:
					level, ones = k, ones+1
				default:
					return fmt.Errorf("x = %g: selector of level %d is %d", x, k, int64(sel[k*len(xs)+i]))
				}
			}
			if ones != 1 {
				return fmt.Errorf("x = %g: %d levels selected", x, ones)
			}
			s := specs[level]
			if window := math.Ldexp(1, int(s.Shift)+s.Bits-int(s.InScale)); x >= window {
				return fmt.Errorf("x = %g: level %d selected, window [0, %g)", x, level, window)
			}
			if level > 0 && x < wideThreshold(specs[level-1])-s.step() {
				return fmt.Errorf("x = %g: level %d selected, below level %d's band", x, level, level-1)
			}
		}
		return nil
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tabs := wideTables(tc.specs, tc.out, tc.f, tc.df)
			top := tc.specs[len(tc.specs)-1]
			hi := wideThreshold(top) * 4 // the top level's window
			var xs []float64
			r := rand.New(rand.NewPCG(3, 4))
			for i := 0; i < 600; i++ {
				xs = append(xs, tc.lo*math.Pow(hi/tc.lo, r.Float64())*0.999)
			}
			for k := range tc.specs {
				th := wideThreshold(tc.specs[k])
				st := tc.specs[k].step()
				for _, d := range []float64{-2 * st, -st, -st / 2, 0, st / 2, st, 2 * st} {
					if x := th + d; x >= tc.lo && x < hi {
						xs = append(xs, x)
					}
				}
			}
			if err := check(t, tc.specs, tabs, tc.f, xs, tc.relErr); err != nil {
				t.Fatal(err)
			}
			// The values: f(x) to within relErr.
			_, got := wideOnce(t, tc.specs, tabs, xs, tc.out)
			var worst float64
			for i, x := range xs {
				// relative error, beyond two units of the output scale
				e := math.Max(0, math.Abs(got[i]-tc.f(x))-math.Ldexp(2, -int(tc.out))) / tc.f(x)
				worst = math.Max(worst, e)
				if e > tc.relErr {
					t.Errorf("x = %g: got %g, want %g (relative error %.2g)", x, got[i], tc.f(x), e)
				}
			}
			t.Logf("%d inputs in [%g, %g): worst relative error %.2g beyond two output units", len(xs), tc.lo, hi, worst)

			// Mutation: comparison domains three bits too narrow.
			levelCmpBits = -3
			defer func() { levelCmpBits = 0 }()
			if err := check(t, tc.specs, tabs, tc.f, xs, tc.relErr); err == nil {
				t.Fatal("level selectors with too narrow comparison domains pass: the test cannot fail")
			}
		})
	}
}
