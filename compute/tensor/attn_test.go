package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestSiluMatchesScalar: the vector SiLU gives the scalar expression's bits
// for every input class, including the Expf range edges, ±0, infinities
// and NaN-free extremes.
func TestSiluMatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	g := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 87.33, -87.33, 88.72, -88.72, 87.34, -88.73,
		88.3, 88.38, 88.5, 88.7, 100, -100, 1e-30, -1e-30, 1e30, -1e30, 3e38, -3e38, float32(math.Inf(1)), float32(math.Inf(-1)),
		0.5, -0.5, 1e-45, -1e-45, 20, -20, 40, -40}
	for len(g) < 4099 {
		g = append(g, float32(r.NormFloat64()*math.Exp(2*r.NormFloat64())))
	}
	u := randVec(r, len(g))
	want := make([]float32, len(g))
	for i, v := range g {
		want[i] = v * (1 / (1 + Expf(-v))) * u[i]
	}
	got := append([]float32(nil), g...)
	Silu(got, u)
	sameBits(t, "silu", got, want)
}

// TestAttend16MatchesScalar: the batched attention kernels give the scalar
// per-query computation's bits for any number of queries, start position
// and head dimension (odd multiples of 2 included).
func TestAttend16MatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	levels, restore := kernelLevels()
	defer restore()
	for trial := 0; trial < 60; trial++ {
		hd := []int{2, 6, 8, 16, 30, 64, 80, 128}[trial%8]
		ld := hd * (1 + r.IntN(3))
		p0 := r.IntN(70)
		if trial%5 == 0 {
			p0 = 0
		}
		nl := 1 + r.IntN(16)
		n := p0 + nl
		q := randVec(r, nl*ld)
		kc := randVec(r, n*ld)
		vc := randVec(r, n*ld)
		if trial%7 == 3 { // large scores: some exp underflow to 0
			for i := range q {
				q[i] *= 30
			}
		}
		scale := float32(math.Sqrt(float64(hd)))
		want := make([]float32, nl*ld)
		var sc AttnScratch
		attendGeneric(want, ld, q, ld, kc, vc, ld, p0, nl, n, hd, scale, &sc)
		for name, set := range levels {
			set()
			got := make([]float32, nl*ld)
			Attend16(got, ld, q, ld, kc, vc, ld, p0, nl, hd, scale, &sc)
			for l := 0; l < nl; l++ {
				sameBits(t, fmt.Sprintf("%s hd %d p0 %d nl %d query %d", name, hd, p0, nl, l), got[l*ld:l*ld+hd], want[l*ld:l*ld+hd])
			}
		}
	}
}

// TestAttendHeadsMatchesSingleQuery: the query heads of one key-value head
// at a decode step, run as the lanes of AttendHeads, each get the bits of
// that head's query attended alone (the scalar computation of spec 07 §6.3
// step 5 over keys 0…pos), at every kernel level.
func TestAttendHeadsMatchesSingleQuery(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	levels, restore := kernelLevels()
	defer restore()
	for trial := 0; trial < 60; trial++ {
		hd := []int{2, 6, 8, 16, 30, 64, 80, 128}[trial%8]
		ld := hd * (1 + r.IntN(3))
		pos := r.IntN(90)
		if trial%5 == 0 {
			pos = 0
		}
		nh := []int{1, 2, 4, 7, 8, 16}[trial%6]
		q := randVec(r, nh*hd)
		kc := randVec(r, (pos+1)*ld)
		vc := randVec(r, (pos+1)*ld)
		if trial%7 == 3 { // large scores: some exp underflow to 0
			for i := range q {
				q[i] *= 30
			}
		}
		scale := float32(math.Sqrt(float64(hd)))
		want := make([]float32, nh*hd)
		var sc AttnScratch
		for h := 0; h < nh; h++ {
			attendGeneric(want[h*hd:], hd, q[h*hd:], hd, kc, vc, ld, pos, 1, pos+1, hd, scale, &sc)
		}
		for name, set := range levels {
			set()
			got := make([]float32, nh*hd)
			AttendHeads(got, hd, q, hd, kc, vc, ld, pos, nh, hd, scale, &sc)
			sameBits(t, fmt.Sprintf("%s hd %d pos %d heads %d", name, hd, pos, nh), got, want)
		}
	}
}

// TestAttendValuesMatchesScalar: the value step of one query gives the
// scalar loop's bits (round(a·v) added in order of j from +0) for head
// dimensions that use the 64- and 16-lane kernels, the scalar tail, or
// both, at every kernel level.
func TestAttendValuesMatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	levels, restore := kernelLevels()
	defer restore()
	for trial := 0; trial < 60; trial++ {
		hd := []int{2, 16, 30, 64, 80, 100, 128, 144}[trial%8]
		ld := hd + r.IntN(3)*16
		n := 1 + r.IntN(90)
		a := randVec(r, n)
		v := randVec(r, n*ld)
		want := make([]float32, hd)
		for j, w := range a {
			for d := range want {
				want[d] += float32(w * v[j*ld+d])
			}
		}
		for name, set := range levels {
			set()
			got := make([]float32, hd)
			for i := range got {
				got[i] = float32(i) // must be overwritten
			}
			AttendValues(got, a, v, ld)
			sameBits(t, fmt.Sprintf("%s hd %d ld %d n %d", name, hd, ld, n), got, want)
		}
	}
}
