package dpf

import (
	"bytes"
	"testing"
)

// TestDCFExhaustive checks x -> beta*[x < alpha] at every point of small
// domains, for every alpha, through EvalLess (batched) and Eval.
func TestDCFExhaustive(t *testing.T) {
	rng := seeded(7)
	for bits := 1; bits <= 6; bits++ {
		n := uint64(1) << uint(bits)
		for alpha := uint64(0); alpha < n; alpha++ {
			beta := 0x9e3779b97f4a7c15 * (alpha + 1)
			k0, k1, err := GenLess(alpha, beta, bits, rng)
			if err != nil {
				t.Fatal(err)
			}
			xs := make([]uint64, n)
			which := make([]int32, n)
			for x := range xs {
				xs[x] = uint64(x)
			}
			o0, o1 := make([]uint64, n), make([]uint64, n)
			if err := EvalLess([]Key{k0}, which, xs, o0); err != nil {
				t.Fatal(err)
			}
			if err := EvalLess([]Key{k1}, which, xs, o1); err != nil {
				t.Fatal(err)
			}
			for x := uint64(0); x < n; x++ {
				want := uint64(0)
				if x < alpha {
					want = beta
				}
				if got := o0[x] + o1[x]; got != want {
					t.Fatalf("bits %d alpha %d x %d: got %#x want %#x", bits, alpha, x, got, want)
				}
				if k0.Eval(x) != o0[x] || k1.Eval(x) != o1[x] {
					t.Fatalf("bits %d alpha %d x %d: Eval differs from EvalLess", bits, alpha, x)
				}
			}
		}
	}
}

// TestDCFWide checks 64- and 20-bit domains at points around alpha and at
// random points, many keys in one batch.
func TestDCFWide(t *testing.T) {
	rng := seeded(8)
	for _, bits := range []int{20, 64} {
		var keys0, keys1 []Key
		var which []int32
		var xs, want []uint64
		mask := ^uint64(0)
		if bits < 64 {
			mask = 1<<uint(bits) - 1
		}
		var buf [8]byte
		rnd := func() uint64 {
			rng.Read(buf[:])
			v := uint64(0)
			for _, c := range buf {
				v = v<<8 | uint64(c)
			}
			return v & mask
		}
		for k := 0; k < 40; k++ {
			alpha, beta := rnd(), rnd()|1
			k0, k1, err := GenLess(alpha, beta, bits, rng)
			if err != nil {
				t.Fatal(err)
			}
			keys0, keys1 = append(keys0, k0), append(keys1, k1)
			for _, x := range []uint64{alpha, alpha - 1, alpha + 1, 0, mask, rnd(), rnd()} {
				x &= mask
				which = append(which, int32(k))
				xs = append(xs, x)
				w := uint64(0)
				if x < alpha {
					w = beta
				}
				want = append(want, w)
			}
		}
		o0, o1 := make([]uint64, len(xs)), make([]uint64, len(xs))
		if err := EvalLess(keys0, which, xs, o0); err != nil {
			t.Fatal(err)
		}
		if err := EvalLess(keys1, which, xs, o1); err != nil {
			t.Fatal(err)
		}
		for j := range xs {
			if o0[j]+o1[j] != want[j] {
				t.Fatalf("bits %d point %d: got %#x want %#x", bits, j, o0[j]+o1[j], want[j])
			}
		}
	}
}

// TestDCFEncoding checks the key size, the round trip through
// AppendBinary and DecodeAll among point keys, and that EvalLess refuses
// point keys, mixed parties and points outside the domain.
func TestDCFEncoding(t *testing.T) {
	rng := seeded(9)
	a0, a1, err := AppendGenLess(nil, nil, 300, 1, 11, rng)
	if err != nil {
		t.Fatal(err)
	}
	if len(a0) != CmpKeySize(11) || len(a1) != CmpKeySize(11) {
		t.Fatalf("key of %d bytes, want %d", len(a0), CmpKeySize(11))
	}
	for bits := 1; bits <= MaxCmpBits; bits++ {
		l := min(bits, 2)
		if CmpKeySize(bits) != 19+25*(bits-l)+8<<uint(l) || (bits >= 2 && CmpKeySize(bits) != 25*bits+1) {
			t.Fatalf("CmpKeySize(%d) = %d", bits, CmpKeySize(bits))
		}
	}
	// version 3 (no early termination) is refused
	if _, _, err := Decode(append([]byte{3}, a0[1:]...)); err == nil {
		t.Fatal("a version-3 comparison key accepted")
	}
	p0, _, err := AppendGen(nil, nil, 5, 1, 10, rng)
	if err != nil {
		t.Fatal(err)
	}
	stream := append(append(append([]byte(nil), p0...), a0...), p0...)
	keys, err := DecodeAll(stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys[0].Cmp || !keys[1].Cmp || keys[2].Cmp {
		t.Fatalf("decoded %d keys, kinds %v %v %v", len(keys), keys[0].Cmp, keys[1].Cmp, keys[2].Cmp)
	}
	enc, err := keys[1].AppendBinary(nil)
	if err != nil || !bytes.Equal(enc, a0) {
		t.Fatalf("re-encoding differs (%v)", err)
	}
	if err := keys[1].EvalAll(make([]uint64, 8)); err == nil {
		t.Fatal("EvalAll of a comparison key did not fail")
	}
	k1, _, err := Decode(a1)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint64, 1)
	for name, c := range map[string]struct {
		keys []Key
		x    uint64
	}{
		"point key":     {[]Key{keys[0]}, 1},
		"outside":       {[]Key{keys[1]}, 1 << 11},
		"mixed parties": {[]Key{keys[1], k1}, 1},
	} {
		which := []int32{0}
		xs := []uint64{c.x}
		if len(c.keys) == 2 {
			which, xs, out = []int32{0, 1}, []uint64{1, 1}, make([]uint64, 2)
		}
		if err := EvalLess(c.keys, which, xs, out); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// A reserved control bit set is refused.
	bad := append([]byte(nil), a0...)
	bad[3+16+16] |= 4
	if _, _, err := Decode(bad); err == nil {
		t.Fatal("reserved control bit accepted")
	}
	if _, _, err := Decode(a0[:len(a0)-1]); err == nil {
		t.Fatal("short key accepted")
	}
}

func BenchmarkEvalLess12(b *testing.B) {
	rng := seeded(10)
	const n = 1024
	keys := make([]Key, n)
	which := make([]int32, 3*n)
	xs := make([]uint64, 3*n)
	for i := range keys {
		k, _, err := GenLess(uint64(i), 1, 12, rng)
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = k
		// The points are uniform, as the protocol's are (opened values
		// under a uniform mask): paths and control bits are random.
		for j := 0; j < 3; j++ {
			which[3*i+j], xs[3*i+j] = int32(i), rng.r.Uint64()&4095
		}
	}
	out := make([]uint64, 3*n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := EvalLess(keys, which, xs, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*3*n), "ns/point")
}

func BenchmarkGenLess12(b *testing.B) {
	rng := seeded(11)
	var d0, d1 []byte
	for i := 0; i < b.N; i++ {
		var err error
		d0, d1, err = AppendGenLess(d0[:0], d1[:0], uint64(i)&4095, 1, 12, rng)
		if err != nil {
			b.Fatal(err)
		}
	}
}
