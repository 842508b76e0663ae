package mpc

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/unfed/unfed/compute/mpc/mpctest"
)

// lutOnce deals one lookup gate for the inputs xs (reals at spec.InScale),
// runs both parties' halves on random shares of them and returns the
// reconstructed output of the first table and, for comparison, the entry
// T[i] alone (the index without the linear term).
// dealtRuns checks the dealing dl and returns party A's and B's runs over
// its keys and randomness, as a stage's parties read them.
func dealtRuns(t *testing.T, dl *dealing) (ra, rb *run) {
	t.Helper()
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
	ra = &run{party: 0, src: newPRGSource(dl.seedA[:]), keys: &keySource{keys: ka}}
	rb = &run{party: 1, src: &bufSource{b: dl.b}, keys: &keySource{keys: kb, ys: precompute(kb, 0, new([]uint64), nil)}}
	return ra, rb
}

func lutOnce(t *testing.T, spec lutSpec, xs []float64, outScale uint, tab, slope []uint64) (got, entry []float64) {
	t.Helper()
	n := len(xs)
	dl, err := newDealing(mpctest.NewRand(uint64(n)), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	dealLUT(dl, n, spec)
	ra, rb := dealtRuns(t, dl)
	ga, err := ra.readLUT(n, spec)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := rb.readLUT(n, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := rb.keys.done(); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	xa, xb := make([]uint64, n), make([]uint64, n)
	for i, x := range xs {
		xa[i] = r.Uint64()
		xb[i] = fix(x, spec.InScale) - xa[i]
	}
	ma, mb := ga.mask(ra, xa), gb.mask(rb, xb)
	c := make([]uint64, n)
	for i := range c {
		c[i] = ma[i] + mb[i]
	}
	oa, err := ga.finish(c, slope, tab, tab)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := gb.finish(c, slope, tab, tab)
	if err != nil {
		t.Fatal(err)
	}
	got, entry = make([]float64, n), make([]float64, n)
	for i := range xs {
		got[i] = unfix(oa[0][i]+ob[0][i], outScale)
		entry[i] = unfix(oa[1][i]+ob[1][i], outScale)
	}
	return got, entry
}

// TestInterpolatedLUT checks the interpolated lookup of spec §6.8 against the
// error bound derived there, for SiLU, exp and one level of the reciprocal:
// the tangent's error, the dropped fraction bits and the rounding of the
// slope table. The entries alone (a plain §6.4 lookup of the same width)
// must be at least four times outside that bound somewhere, so a missing or mis-signed linear term
// fails.
func TestInterpolatedLUT(t *testing.T) {
	par := Params{}.withDefaults()
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	grid := func(lo, hi float64, n int) []float64 {
		xs := make([]float64, n)
		r := rand.New(rand.NewPCG(uint64(n), 2))
		for i := range xs {
			xs[i] = lo + (hi-lo)*r.Float64()
		}
		return xs
	}
	ws := par.recipSpecs()[1]
	recip := func(x float64) float64 { return 1 / x }
	for _, tc := range []struct {
		name  string
		spec  lutSpec
		out   uint
		f, df func(float64) float64
		xs    []float64
		bound func(x float64) float64 // allowed |error| at x
	}{
		{"silu", par.siluSpec(), Frac,
			func(x float64) float64 { return x * sig(x) },
			func(x float64) float64 { return sig(x) * (1 + x*(1-sig(x))) },
			grid(-16, 16-1.0/16, 400),
			func(float64) float64 { return 0.0026 }},
		{"exp", par.expSpec(), Frac, math.Exp, math.Exp,
			grid(-16, 16-1.0/32, 400),
			func(x float64) float64 { return 1e-3*math.Exp(x) + 6e-4 }},
		{"recip-level1", ws, 2 * Frac, recip, func(x float64) float64 { return -1 / (x * x) },
			grid(wideThreshold(par.recipSpecs()[0]), wideThreshold(ws), 200),
			func(x float64) float64 { return 0.005 / x }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, entry := lutOnce(t, tc.spec, tc.xs, tc.out, rotTable(tc.spec.table(tc.f, tc.out)), rotTable(tc.spec.slope(tc.df, tc.out)))
			var worst, worstEntry float64
			for i, x := range tc.xs {
				want := tc.f(x)
				if d := math.Abs(got[i] - want); d > tc.bound(x) {
					t.Errorf("x = %.6f: got %.6f, want %.6f (error %.2g, bound %.2g)", x, got[i], want, d, tc.bound(x))
				}
				worst = math.Max(worst, math.Abs(got[i]-want)/tc.bound(x))
				worstEntry = math.Max(worstEntry, math.Abs(entry[i]-want)/tc.bound(x))
			}
			t.Logf("worst error %.2f of the bound; entries alone: %.1f times the bound", worst, worstEntry)
			if worstEntry < 4 {
				t.Errorf("entries alone within %.1f times the bound: the test does not exercise the linear term", worstEntry)
			}
		})
	}
}

// TestLUTSlopeMismatch: a slope table for a plain lookup, none for an
// interpolated one, or a table of the wrong length is an error, not a
// silently different result.
func TestLUTSlopeMismatch(t *testing.T) {
	g := &lutG{spec: Params{}.withDefaults().siluSpec()}
	if _, err := g.finish(nil, nil, make([]uint64, 2<<g.spec.Bits)); err == nil {
		t.Fatal("interpolated lookup without a slope table accepted")
	}
	g = &lutG{spec: lutSpec{Bits: 4}}
	if _, err := g.finish(nil, make([]uint64, 32), make([]uint64, 32)); err == nil {
		t.Fatal("plain lookup with a slope table accepted")
	}
	if _, err := g.finish(nil, nil, make([]uint64, 16)); err == nil {
		t.Fatal("a table not in rotated form accepted")
	}
}

// TestMul3 checks §6.3's two triple products with a common factor: the
// parties' shares of x1·y1·z + x2·y2·z reconstruct the exact ring product
// for random ring elements, with one opening of five values per element.
// With one dealt mask product left out of the expansion the sum is wrong,
// so every term is needed.
func TestMul3(t *testing.T) {
	const n = 64
	dl, err := newDealing(mpctest.NewRand(7), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	dealMul3(dl, n)
	if dl.err != nil {
		t.Fatal(dl.err)
	}
	ra := &run{party: 0, src: newPRGSource(dl.seedA[:])}
	rb := &run{party: 1, src: &bufSource{b: dl.b}}
	ga, err := ra.readMul3(n)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := rb.readMul3(n)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(8, 9))
	vals := make([][]uint64, 5) // x1, y1, x2, y2, z
	sa, sb := make([][]uint64, 5), make([][]uint64, 5)
	for k := range vals {
		vals[k], sa[k], sb[k] = make([]uint64, n), make([]uint64, n), make([]uint64, n)
		for i := range n {
			vals[k][i], sa[k][i] = r.Uint64(), r.Uint64()
			sb[k][i] = vals[k][i] - sa[k][i]
		}
	}
	ma := ga.mask(sa[0], sa[1], sa[2], sa[3], sa[4])
	mb := gb.mask(sb[0], sb[1], sb[2], sb[3], sb[4])
	if len(ma) != 5*n {
		t.Fatalf("opened %d values for %d elements, want 5 per element", len(ma), n)
	}
	o := make([]uint64, len(ma))
	for i := range o {
		o[i] = ma[i] + mb[i]
	}
	check := func(ga, gb *mul3G) bool {
		oa, ob := ga.finish(ra, o), gb.finish(rb, o)
		for i := range n {
			want := vals[0][i]*vals[1][i]*vals[4][i] + vals[2][i]*vals[3][i]*vals[4][i]
			if oa[i]+ob[i] != want {
				return false
			}
		}
		return true
	}
	if !check(ga, gb) {
		t.Fatal("x1·y1·z + x2·y2·z does not reconstruct")
	}
	// Mutation: drop [abc] of the first product from B's share.
	bad := *gb
	bad.a1b1c = make([]uint64, n)
	if check(ga, &bad) {
		t.Fatal("the product reconstructs without [a1·b1·c]: the test cannot fail")
	}
}

// TestTruncFusedNorm checks spec §6.10 on its own: after a truncation's
// opening, truncNormIn's public part and mask parts reconstruct the
// truncated value, its Σ x² per row, and (through a select fused with the
// product, §6.7) x·f, all exactly, for inputs of both signs whose openings
// fall on both sides of 2^63 (κ = 0 and κ = 2^32). Dropping κ's part from
// one party's input breaks it.
func TestTruncFusedNorm(t *testing.T) {
	const n, d, K = 4, 50, 3
	const shift = 2 * Frac
	dl, err := newDealing(mpctest.NewRand(11), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	R := dealTrunc(dl, n*d, shift)
	grp := func(i int) int { return i / d }
	dealSelMul(dl, K, n, dealTruncNormIn(dl, d, n, R, shift), grp)
	ra, rb := dealtRuns(t, dl)
	r := rand.New(rand.NewPCG(12, 13))
	xa, xb := make([]uint64, n*d), make([]uint64, n*d)
	for i := range xa {
		v := fix((r.Float64()-0.5)*200, 3*Frac)
		xa[i] = r.Uint64()
		xb[i] = v - xa[i]
	}
	ta, err := ra.readTrunc(n*d, shift)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := rb.readTrunc(n*d, shift)
	if err != nil {
		t.Fatal(err)
	}
	ma, mb := ta.mask(ra, xa), tb.mask(rb, xb)
	c := make([]uint64, len(ma))
	for i := range c {
		c[i] = ma[i] + mb[i]
	}
	ya, yb := ta.finish(ra, c), tb.finish(rb, c)
	ina, err := truncNormIn(ra, ta, c, n)
	if err != nil {
		t.Fatal(err)
	}
	inb, err := truncNormIn(rb, tb, c, n)
	if err != nil {
		t.Fatal(err)
	}
	ga, err := ra.readSelMul(K, n, n*d, 2)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := rb.readSelMul(K, n, n*d, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := ra.src.done(); err != nil {
		t.Fatal(err)
	}
	if err := rb.src.done(); err != nil {
		t.Fatal(err)
	}
	// Level selectors and values: any shared ring elements will do.
	selA, selB, valA, valB := make([]uint64, K*n), make([]uint64, K*n), make([]uint64, K*n), make([]uint64, K*n)
	f := make([]uint64, n)
	for j := range selA {
		sv, vv := r.Uint64(), r.Uint64()
		selA[j], valA[j] = r.Uint64(), r.Uint64()
		selB[j], valB[j] = sv-selA[j], vv-valA[j]
		f[j%n] += sv * vv
	}
	oa, ob := ga.mask(selA, valA), gb.mask(selB, valB)
	o := make([]uint64, len(oa))
	for i := range o {
		o[i] = oa[i] + ob[i]
	}
	kappas := 0
	check := func(inb *normIn) bool {
		ok := true
		for row := 0; row < n; row++ {
			var ss, pubSS, sa, sb uint64
			for i := row * d; i < (row+1)*d; i++ {
				x := ya[i] + yb[i]
				ss += x * x
				if got := ina.X[i] + ina.share(i) + inb.share(i); got != x {
					ok = false
				}
				pubSS += ina.X[i] * ina.X[i]
				sa += 2 * ina.X[i] * ina.share(i)
				sb += 2 * ina.X[i] * inb.share(i)
			}
			if pubSS+sa+sb+ina.sumY2[row]+inb.sumY2[row] != ss {
				ok = false
			}
		}
		_, xfa := ga.finish(ra, o, ina.X, ina.parts, ina.coefs, grp)
		_, xfb := gb.finish(rb, o, inb.X, inb.parts, inb.coefs, grp)
		for i := range xfa {
			if xfa[i]+xfb[i] != (ya[i]+yb[i])*f[grp(i)] {
				ok = false
			}
		}
		return ok
	}
	for _, k := range ina.coefs[1] {
		if k != 0 {
			kappas++
		}
	}
	if kappas == 0 || kappas == n*d {
		t.Fatalf("κ ≠ 0 for %d of %d openings: both cases are needed", kappas, n*d)
	}
	for i := range xa {
		if int64(ya[i]+yb[i]) >= 0 != (int64(xa[i]+xb[i]) >= 0) && ya[i]+yb[i] != 0 {
			t.Fatalf("element %d: truncation changed the sign", i)
		}
	}
	if !check(inb) {
		t.Fatal("the truncation's public part and mask parts do not reconstruct x, Σx² or x·f")
	}
	// Mutation: B drops κ·τ from its input.
	bad := *inb
	bad.coefs = [][]uint64{inb.coefs[0], make([]uint64, n*d)}
	if check(&bad) {
		t.Fatal("x reconstructs without κ·[R_63]: the test cannot fail")
	}
}
