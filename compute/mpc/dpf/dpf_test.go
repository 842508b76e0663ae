package dpf

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

type chachaReader struct{ r *rand.ChaCha8 }

func (c chachaReader) Read(p []byte) (int, error) { return c.r.Read(p) }

func seeded(n uint64) chachaReader {
	var s [32]byte
	s[0] = byte(n)
	s[1] = byte(n >> 8)
	return chachaReader{rand.NewChaCha8(s)}
}

// TestDPF checks full-domain correctness for several vocabulary sizes and
// that the key size is 19 + 17*(n-l) + 8*2^l bytes, n = ceil(log2 V),
// l = min(n, 3).
func TestDPF(t *testing.T) {
	for _, v := range []int{2, 3, 4, 5, 8, 9, 100, 512, 32000, 151936} {
		bits := BitsFor(v)
		rng := seeded(uint64(v))
		alphas := []uint64{0, uint64(v - 1), uint64(v / 3)}
		for _, alpha := range alphas {
			beta := uint64(0x1234567890abcdef) + alpha
			k0, k1, err := Gen(alpha, beta, bits, rng)
			if err != nil {
				t.Fatal(err)
			}
			o0 := make([]uint64, v)
			o1 := make([]uint64, v)
			if err := k0.EvalAll(o0); err != nil {
				t.Fatal(err)
			}
			if err := k1.EvalAll(o1); err != nil {
				t.Fatal(err)
			}
			for x := 0; x < v; x++ {
				want := uint64(0)
				if uint64(x) == alpha {
					want = beta
				}
				if got := o0[x] + o1[x]; got != want {
					t.Fatalf("V=%d alpha=%d x=%d: got %x want %x", v, alpha, x, got, want)
				}
			}
			// single-point Eval agrees with EvalAll
			for _, x := range []uint64{alpha, 0, uint64(v - 1)} {
				if k0.Eval(x) != o0[x] || k1.Eval(x) != o1[x] {
					t.Fatalf("V=%d: Eval and EvalAll disagree at %d", v, x)
				}
			}
			e0, err := k0.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			l := min(bits, 3)
			if want := 19 + 17*(bits-l) + 8<<l; len(e0) != KeySize(bits) || KeySize(bits) != want {
				t.Fatalf("V=%d: key size %d (KeySize %d), want %d", v, len(e0), KeySize(bits), want)
			}
			d, rest, err := Decode(e0)
			if err != nil || len(rest) != 0 {
				t.Fatalf("decode: %v rest %d", err, len(rest))
			}
			if d.Eval(alpha) != o0[alpha] {
				t.Fatal("decoded key evaluates differently")
			}
		}
	}
	if KeySize(BitsFor(32000)) > 4096 {
		t.Fatal("key for V=32000 exceeds 4 KB")
	}
	if KeySize(BitsFor(151936)) <= KeySize(BitsFor(32000)) {
		t.Fatal("key size does not grow with log V")
	}
}

// TestDPFKeysLookRandom checks that one key does not depend on alpha in an
// obvious way: keys for different points differ in every correction word.
func TestDPFKeysDiffer(t *testing.T) {
	rng := seeded(7)
	a0, _, _ := Gen(5, 1, 10, rng)
	b0, _, _ := Gen(600, 1, 10, rng)
	if bytes.Equal(a0.Seed[:], b0.Seed[:]) {
		t.Fatal("seeds repeat")
	}
	if _, _, err := Gen(1024, 1, 10, rng); err == nil {
		t.Fatal("alpha outside domain accepted")
	}
}

func TestVectors(t *testing.T) { checkVectors(t) }

func FuzzDecode(f *testing.F) {
	rng := seeded(1)
	k0, k1, _ := Gen(3, 9, 5, rng)
	e0, _ := k0.MarshalBinary()
	e1, _ := k1.MarshalBinary()
	f.Add(e0)
	f.Add(e1)
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{1, 25, 0})
	f.Add([]byte{})
	c0, c1, _ := AppendGenLess(nil, nil, 5, 1, 6, rng)
	f.Add(c0)
	f.Add(c1)
	f.Add([]byte{CmpVersion, 65, 0})
	v0, v1, _ := AppendGenVec(nil, nil, 6, []uint64{1, 33}, 9, rng)
	f.Add(v0)
	f.Add(v1)
	w0, _, _ := AppendGenVec(nil, nil, 1, []uint64{1, 2, 3}, 2, rng)
	f.Add(w0)
	f.Add([]byte{VecVersion, 9, 0, 5})
	f.Add([]byte{VecVersion, 9, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, _, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := k.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, b[:len(enc)]) {
			t.Fatal("re-encoding differs")
		}
		if k.Cmp {
			for _, x := range []uint64{0, 1, 1<<uint(k.Bits-1) - 1} {
				_ = k.Eval(x)
			}
			return
		}
		out := make([]uint64, 1<<uint(min(k.Bits, 10)))
		if k.Elems != 0 {
			if k.EvalAll(out) == nil {
				t.Fatal("EvalAll of a vector key")
			}
			outs := make([][]uint64, k.Elems)
			for e := range outs {
				outs[e] = make([]uint64, len(out))
			}
			if err := k.EvalAllVec(outs); err != nil {
				t.Fatal(err)
			}
			if err := k.EvalVec(uint64(len(out)-1), make([]uint64, k.Elems)); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err := k.EvalAll(out); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkEvalAll32000(b *testing.B) { benchEvalAll(b, 32000) }

func BenchmarkEvalAll151936(b *testing.B) { benchEvalAll(b, 151936) }

func BenchmarkEvalAll16384(b *testing.B) { benchEvalAll(b, 16384) }

func benchEvalAll(b *testing.B, v int) {
	k0, _, _ := Gen(uint64(v/2), 1, BitsFor(v), seeded(2))
	out := make([]uint64, v)
	b.ResetTimer()
	for b.Loop() {
		_ = k0.EvalAll(out)
	}
}

// FuzzDecodeAll: DecodeAll accepts exactly what a loop of Decode accepts and
// gives the same keys.
func FuzzDecodeAll(f *testing.F) {
	rng := seeded(2)
	var two []byte
	for _, bits := range []int{2, 10} {
		k0, _, _ := Gen(1, 7, bits, rng)
		e, _ := k0.MarshalBinary()
		two = append(two, e...)
	}
	c0, _, _ := AppendGenLess(nil, nil, 3, 1, 12, rng)
	v0, _, _ := AppendGenVec(nil, nil, 3, []uint64{1, 9}, 10, rng)
	f.Add(append(append(append([]byte(nil), two...), v0...), c0...))
	f.Add(two)
	f.Add(append(append([]byte(nil), two...), c0...))
	f.Add(two[:len(two)-1])
	f.Add([]byte{})
	f.Add([]byte{2, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var want []Key
		var werr error
		for rest := b; len(rest) > 0; {
			var k Key
			if k, rest, werr = Decode(rest); werr != nil {
				break
			}
			want = append(want, k)
		}
		got, err := DecodeAll(b)
		if (err != nil) != (werr != nil) {
			t.Fatalf("DecodeAll error %v, Decode loop error %v", err, werr)
		}
		if err != nil {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%d keys, want %d", len(got), len(want))
		}
		for i := range got {
			a, _ := got[i].MarshalBinary()
			w, _ := want[i].MarshalBinary()
			if !bytes.Equal(a, w) {
				t.Fatalf("key %d differs", i)
			}
		}
	})
}
