package tensor

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"math"
	"math/rand/v2"
	"testing"
)

// goldenBits is the SHA-256 of goldenWorkload's outputs. The determinism
// contract (doc.go; spec/07-model.md §6) makes it the same for every kernel
// this machine selects, for the portable code, and for the portable build
// (-tags purego, the code other architectures run): a verifier's verdict
// must not depend on which of them ran (spec/11-verification.md §4.1).
const goldenBits = "0e1684be77e799f58d926f784049bb3bedf08706021fb10f359af946d3d5e4a4"

// goldenWorkload runs the package's public kernels on fixed inputs (every
// weight type, batch sizes across the kernels' tiles, row ranges that cut
// the Q8_0 groups, attention of several shapes, SiLU, Dot with tails) and
// hashes the bits of every output.
func goldenWorkload(t *testing.T) string {
	r := rand.New(rand.NewPCG(77, 78))
	h := sha256.New()
	put := func(v []float32) {
		var b [4]byte
		for _, x := range v {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
			h.Write(b[:])
		}
	}
	goldenProducts(t, r, put)
	for _, n := range []int{1, 15, 16, 17, 40, 4099} {
		g, u := randVec(r, n), randVec(r, n)
		for i := range g {
			g[i] *= 8
		}
		Silu(g, u)
		put(g)
		put([]float32{Dot(u, randVec(r, n))})
	}
	goldenAttention(r, put)
	return hashHex(h)
}

func goldenProducts(t *testing.T, r *rand.Rand, put func([]float32)) {
	for _, typ := range []DType{F32, F16, BF16, Q8_0} {
		for _, shape := range [][2]int{{37, 64}, {70, 96}, {33, 40}, {20, 256}} {
			rows, cols := shape[0], shape[1]
			if typ == Q8_0 && cols%Q8Block != 0 {
				continue
			}
			w := randVec(r, rows*cols)
			m := quantMat(t, typ, rows, cols, w)
			for pass := 0; pass < 2; pass++ {
				if pass == 1 {
					if typ != Q8_0 {
						break
					}
					if err := m.Pack(); err != nil {
						t.Fatal(err)
					}
				}
				for _, n := range []int{1, 2, 6, 7, 13} {
					x := randVec(r, n*cols)
					out := make([]float32, n*rows)
					if err := MatMul(out, m, x, n, 2); err != nil {
						t.Fatal(err)
					}
					put(out)
					clear(out)
					if err := MatMulRange(out, m, x, n, 5, rows-3); err != nil {
						t.Fatal(err)
					}
					put(out)
				}
			}
		}
	}
}

func goldenAttention(r *rand.Rand, put func([]float32)) {
	var sc AttnScratch
	for _, c := range [][3]int{{64, 0, 16}, {64, 9, 5}, {80, 30, 16}, {6, 3, 1}, {128, 17, 3}, {30, 0, 7}} {
		hd, p0, nl := c[0], c[1], c[2]
		ld := hd + 2
		n := p0 + nl
		q, kc, vc := randVec(r, nl*ld), randVec(r, n*ld), randVec(r, n*ld)
		scale := float32(math.Sqrt(float64(hd)))
		out := make([]float32, nl*ld)
		Attend16(out, ld, q, ld, kc, vc, ld, p0, nl, hd, scale, &sc)
		put(out)
		clear(out)
		AttendHeads(out, ld, q, ld, kc, vc, ld, p0, nl, hd, scale, &sc)
		put(out)
		a := randVec(r, n)
		vo := make([]float32, hd)
		AttendValues(vo, a, vc, ld)
		put(vo)
	}
}

func hashHex(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// TestGoldenBits: every kernel selection of this build gives goldenBits.
func TestGoldenBits(t *testing.T) {
	levels, restore := kernelLevels()
	defer restore()
	for name, set := range levels {
		set()
		if got := goldenWorkload(t); got != goldenBits {
			t.Errorf("%s: outputs hash to %s, want %s", name, got, goldenBits)
		}
	}
}
