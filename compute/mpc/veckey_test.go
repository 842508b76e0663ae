package mpc

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/mpc/dpf"
	"github.com/unfed/unfed/compute/mpc/mpctest"
)

// TestInterpVectorKeyMatchesTwoKeys: an interpolated lookup reads one
// vector key of (1, f_R) per element (spec §6.8). For every window index u
// the parties' reconstructed result is exactly, in the ring,
// T[u - rho] + (f_c - f_R)·D[u - rho], and equal to what the two point keys
// of the previous PREP version (stage 8, entry 7: payload 1, then f_R, at
// the same rho) give; party B reads
// its keys' evaluations made ahead, party A evaluates them in the step.
func TestInterpVectorKeyMatchesTwoKeys(t *testing.T) {
	par := Params{}.withDefaults()
	for _, spec := range []lutSpec{
		{Bits: 5, InScale: Frac, Shift: 9, Signed: true, Interp: interpBits},
		par.siluSpec(),
	} {
		size := 1 << spec.Bits
		n := size // one input per window index
		dl, err := newDealing(mpctest.NewRand(uint64(spec.Bits)), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		R := dealLUT(dl, n, spec)
		ra, rb := dealtRuns(t, dl)
		ga, err := ra.readLUT(n, spec)
		if err != nil {
			t.Fatal(err)
		}
		gb, err := rb.readLUT(n, spec)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ga.keys {
			if ga.keys[i].Elems != 2 || gb.ys[i] == nil {
				t.Fatalf("element %d: key of %d elements, evaluated ahead %v", i, ga.keys[i].Elems, gb.ys[i] != nil)
			}
		}
		r := rand.New(rand.NewPCG(7, uint64(spec.Bits)))
		tab, slope := make([]uint64, size), make([]uint64, size)
		for j := range tab {
			tab[j], slope[j] = r.Uint64(), r.Uint64()
		}
		c := make([]uint64, n)
		for i := range c {
			c[i] = uint64(i)<<spec.Shift | r.Uint64()&(1<<spec.Shift-1) | r.Uint64()<<(spec.Shift+uint(spec.Bits))
		}
		oa, err := ga.finish(c, rotTable(slope), rotTable(tab))
		if err != nil {
			t.Fatal(err)
		}
		ob, err := gb.finish(c, rotTable(slope), rotTable(tab))
		if err != nil {
			t.Fatal(err)
		}
		mask := uint64(size - 1)
		for i := range c {
			rho := R[i] >> spec.Shift & mask
			u := c[i] >> spec.Shift & mask
			idx := (u - rho) & mask
			want := tab[idx] + (spec.frac(c[i])-spec.frac(R[i]))*slope[idx]
			if got := oa[0][i] + ob[0][i]; got != want {
				t.Fatalf("Bits %d u %d: %x, want %x", spec.Bits, u, got, want)
			}
			// the same lookup with the two point keys of stage version 8
			if got := twoKeyLookup(t, rho, spec.frac(R[i]), c[i], spec, tab, slope); got != want {
				t.Fatalf("Bits %d u %d: two point keys give %x, want %x", spec.Bits, u, got, want)
			}
		}
	}
}

// twoKeyLookup is §6.8 as stage version 8 computed it: an index key (payload 1)
// and a fraction key (payload f_R) at rho, each evaluated over its domain.
func twoKeyLookup(t *testing.T, rho, fR, c uint64, spec lutSpec, tab, slope []uint64) uint64 {
	t.Helper()
	rng := mpctest.NewRand(rho + 99)
	i0, i1, err := dpf.Gen(rho, 1, spec.Bits, rng)
	if err != nil {
		t.Fatal(err)
	}
	f0, f1, err := dpf.Gen(rho, fR, spec.Bits, rng)
	if err != nil {
		t.Fatal(err)
	}
	size := 1 << spec.Bits
	u := int(c>>spec.Shift) & (size - 1)
	var sum uint64
	for _, k := range [][2]dpf.Key{{i0, f0}, {i1, f1}} {
		yi, yf := make([]uint64, size), make([]uint64, size)
		if err := k[0].EvalAll(yi); err != nil {
			t.Fatal(err)
		}
		if err := k[1].EvalAll(yf); err != nil {
			t.Fatal(err)
		}
		var ti, di, df uint64
		for j := 0; j < size; j++ {
			at := (u - j) & (size - 1)
			ti += yi[j] * tab[at]
			di += yi[j] * slope[at]
			df += yf[j] * slope[at]
		}
		sum += ti + spec.frac(c)*di - df
	}
	return sum
}

// TestLUTKeyKinds: a party refuses a point key where a lookup's vector key
// is due, a vector key where a point key is due, a vector key of another
// length, and a comparison key for either.
func TestLUTKeyKinds(t *testing.T) {
	rng := mpctest.NewRand(3)
	point, _, _ := dpf.Gen(3, 1, 9, rng)
	vec, _, _ := dpf.GenVec(3, []uint64{1, 5}, 9, rng)
	vec3, _, _ := dpf.GenVec(3, []uint64{1, 5, 6}, 9, rng)
	cb, _, _ := dpf.AppendGenLess(nil, nil, 3, 1, 9, rng)
	cmp, _, err := dpf.Decode(cb)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		k     dpf.Key
		elems int
		ok    bool
	}{
		{"point for point", point, 0, true},
		{"vector for vector", vec, 2, true},
		{"point for vector", point, 2, false},
		{"vector for point", vec, 0, false},
		{"3-vector for vector", vec3, 2, false},
		{"comparison for vector", cmp, 2, false},
		{"comparison for point", cmp, 0, false},
	} {
		src := &keySource{keys: []dpf.Key{c.k}}
		_, _, err := src.next(9, c.elems)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrMalformed)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// made ahead: a vector key's two elements, nothing for a 3-vector
	ys := precompute([]dpf.Key{vec, vec3, point}, 0, new([]uint64), nil)
	if len(ys[0]) != 2<<9 || ys[1] != nil || len(ys[2]) != 1<<9 {
		t.Fatalf("evaluations made ahead of %d, %d, %d words", len(ys[0]), len(ys[1]), len(ys[2]))
	}
}

// TestStagePrepOldVersion: a stage party refuses a PREP of version 8 (two
// point keys per interpolated element), 9 (every truncation opened apart
// from the norm that follows it), 10 (RoPE after the product, a
// truncation of the norm's output first), 11 (p − g' opened after p's
// truncation) or 12 (RoPE in the weights) with ErrVersion, and PrepRows does not
// take it for a stage PREP.
func TestStagePrepOldVersion(t *testing.T) {
	sp := newStagePipeline(t, modeltest.Path(t, "stories260K.gguf"), [][2]int{{0, 1}}, 3)
	st := sp.stages[0]
	ma, _, err := st.dealer.Next(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []byte{8, 9, 10, 11, 12} {
		old := append([]byte(nil), ma...)
		old[0] = v
		if err := st.a.Prep(old); !errors.Is(err, ErrVersion) {
			t.Fatalf("version-%d PREP: %v, want ErrVersion", v, err)
		}
		if _, err := PrepRows(old); err == nil {
			t.Fatalf("PrepRows took a version-%d PREP", v)
		}
	}
	if err := st.a.Prep(ma); err != nil {
		t.Fatalf("the same PREP at version %d: %v", StageVersion, err)
	}
}
