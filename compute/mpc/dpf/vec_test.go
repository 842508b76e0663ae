package dpf

import (
	"bytes"
	"reflect"
	"testing"
)

// vecPaths runs f on each evaluation path: the VAES kernels, AES-NI
// without them, and the portable loops.
func vecPaths(f func(path string)) {
	f("asm")
	v := vaes
	vaes = false
	f("aesni")
	vaes = v
	portable(func() { f("portable") })
}

// TestVecDPF checks vector keys over whole domains and prefixes of them,
// on every path: each element's outputs sum to its payload at alpha and 0
// elsewhere, as two point keys at alpha with those payloads sum to; the
// shares are the same bits on every path; element 0's shares are those of
// the point key AppendGen makes from the same root seeds (same tree, same
// conversion); EvalVec agrees at every point; and the encoding has
// VecKeySize bytes and round-trips.
func TestVecDPF(t *testing.T) {
	for bits := 1; bits <= 13; bits++ {
		size := 1 << uint(bits)
		for i, alpha := range []uint64{0, uint64(size - 1), uint64(bits*977) % uint64(size)} {
			seed := uint64(1000*bits + i)
			for _, m := range []int{2, 3, MaxElems} {
				beta := make([]uint64, m)
				beta[0] = 1
				for e := 1; e < m; e++ {
					beta[e] = uint64(0x9e3779b97f4a7c15) * uint64(e+i+bits)
				}
				a, b, err := AppendGenVec(nil, nil, alpha, beta, bits, seeded(seed))
				if err != nil {
					t.Fatal(err)
				}
				if len(a) != VecKeySize(bits, m) || len(b) != len(a) {
					t.Fatalf("bits %d: key of %d bytes, VecKeySize %d", bits, len(a), VecKeySize(bits, m))
				}
				k0, rest, err := Decode(a)
				if err != nil || len(rest) != 0 {
					t.Fatalf("decode: %v", err)
				}
				k1, _, err := Decode(b)
				if err != nil {
					t.Fatal(err)
				}
				if re, _ := k0.MarshalBinary(); !bytes.Equal(re, a) {
					t.Fatal("re-encoding differs")
				}
				// the point keys of the same payloads, for the sums
				p0, _, _ := AppendGen(nil, nil, alpha, beta[0], bits, seeded(seed))
				pk, _, err := Decode(p0)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range []int{size, max(1, size-3), min(size, 9)} {
					var ref [2][][]uint64
					point := make([]uint64, n)
					if err := pk.EvalAll(point); err != nil {
						t.Fatal(err)
					}
					vecPaths(func(path string) {
						for p, k := range []*Key{&k0, &k1} {
							out := make([][]uint64, m)
							for e := range out {
								out[e] = make([]uint64, n)
							}
							if err := k.EvalAllVec(out); err != nil {
								t.Fatal(err)
							}
							if ref[p] == nil {
								ref[p] = out
								continue
							}
							for e := range out {
								if !equalWords(out[e], ref[p][e]) {
									t.Fatalf("bits %d n %d party %d element %d: %s path differs from asm", bits, n, p, e, path)
								}
							}
						}
					})
					if !equalWords(ref[0][0], point) {
						t.Fatalf("bits %d: element 0 differs from the point key of the same seeds", bits)
					}
					one := make([]uint64, m)
					for x := 0; x < n; x++ {
						for e := 0; e < m; e++ {
							want := uint64(0)
							if uint64(x) == alpha {
								want = beta[e]
							}
							if got := ref[0][e][x] + ref[1][e][x]; got != want {
								t.Fatalf("bits %d m %d alpha %d x %d element %d: sum %x want %x", bits, m, alpha, x, e, got, want)
							}
						}
						if bits > 8 && x%61 != 0 && uint64(x) != alpha && x != n-1 {
							continue // single points: a sample
						}
						for p, k := range []*Key{&k0, &k1} {
							if err := k.EvalVec(uint64(x), one); err != nil {
								t.Fatal(err)
							}
							for e := range one {
								if one[e] != ref[p][e][x] {
									t.Fatalf("bits %d: EvalVec(%d)[%d] differs from EvalAllVec", bits, x, e)
								}
							}
							if k.Eval(uint64(x)) != ref[p][0][x] {
								t.Fatalf("bits %d: Eval(%d) of a vector key is not its element 0", bits, x)
							}
						}
					}
				}
			}
		}
	}
}

func equalWords(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestVecDPFWide checks a 2^18 domain (a leaf level of odd parents,
// several VAES passes) on every path against the sums.
func TestVecDPFWide(t *testing.T) {
	const bits = 18
	alpha := uint64(123457)
	beta := []uint64{1, 63}
	k0, k1, err := GenVec(alpha, beta, bits, seeded(5))
	if err != nil {
		t.Fatal(err)
	}
	n := 1<<bits - 5
	var ref [2][][]uint64
	vecPaths(func(path string) {
		for p, k := range []*Key{&k0, &k1} {
			out := [][]uint64{make([]uint64, n), make([]uint64, n)}
			if err := k.EvalAllVec(out); err != nil {
				t.Fatal(err)
			}
			if ref[p] == nil {
				ref[p] = out
			} else if !equalWords(out[0], ref[p][0]) || !equalWords(out[1], ref[p][1]) {
				t.Fatalf("party %d: %s path differs", p, path)
			}
		}
	})
	for x := 0; x < n; x++ {
		for e := range beta {
			want := uint64(0)
			if uint64(x) == alpha {
				want = beta[e]
			}
			if ref[0][e][x]+ref[1][e][x] != want {
				t.Fatalf("x %d element %d: wrong sum", x, e)
			}
		}
	}
}

// vecLeaks reports whether one party's vector key visibly relates its
// elements: its share vectors of two elements agree somewhere, or two
// elements' final words differ by 0 or by the difference of the payloads.
// For a pseudorandom key each happens with probability about n*2^-64.
func vecLeaks(t *testing.T, k *Key, beta []uint64) bool {
	n := 1 << uint(k.Bits)
	out := make([][]uint64, k.Elems)
	for e := range out {
		out[e] = make([]uint64, n)
	}
	if err := k.EvalAllVec(out); err != nil {
		t.Fatal(err)
	}
	L := len(k.Final) / k.Elems
	for e := 1; e < k.Elems; e++ {
		for x := 0; x < n; x++ {
			if out[e][x] == out[0][x] {
				return true
			}
		}
		for j := 0; j < L; j++ {
			d := k.Final[e*L+j] - k.Final[j]
			if db := beta[e] - beta[0]; d == 0 || d == db || d == -db {
				return true
			}
		}
	}
	return false
}

// TestVecKeyPseudorandom: one vector key alone shows no relation between
// its elements (each element's conversion has its own blocks), its seed
// is fresh per key, and its correction words change with the point. With
// the elements' tweaks broken (every element converted from the same
// blocks, as two outputs of one PRG call would be if reused) the same check
// finds the point and the payload difference in one key: the test can fail.
func TestVecKeyPseudorandom(t *testing.T) {
	rng := seeded(21)
	beta := []uint64{1, 37}
	for bits := 1; bits <= 12; bits++ {
		for trial := 0; trial < 4; trial++ {
			alpha := uint64(trial*131+bits) % (1 << uint(bits))
			k0, k1, err := GenVec(alpha, beta, bits, rng)
			if err != nil {
				t.Fatal(err)
			}
			if vecLeaks(t, &k0, beta) || vecLeaks(t, &k1, beta) {
				t.Fatalf("bits %d alpha %d: a single key relates its elements", bits, alpha)
			}
		}
	}
	a0, _, _ := GenVec(5, beta, 10, rng)
	b0, _, _ := GenVec(600, beta, 10, rng)
	if bytes.Equal(a0.Seed[:], b0.Seed[:]) {
		t.Fatal("seeds repeat")
	}
	// same party-0 root seed, another point: every correction word moves
	var root [32]byte
	copy(root[:], "0123456789abcdef0123456789abcdef")
	x0, _, _ := GenVec(5, beta, 10, bytes.NewReader(root[:]))
	copy(root[16:], "fedcba9876543210")
	y0, _, _ := GenVec(600, beta, 10, bytes.NewReader(root[:]))
	if x0.Seed != y0.Seed {
		t.Fatal("same root seed, different party-0 seed")
	}
	for i := range x0.SCW {
		if x0.SCW[i] == y0.SCW[i] {
			t.Fatalf("level %d: correction word independent of the other party's seed", i)
		}
	}
	if _, _, err := GenVec(1024, beta, 10, rng); err == nil {
		t.Fatal("alpha outside domain accepted")
	}
	if _, _, err := GenVec(1, []uint64{1}, 10, rng); err == nil {
		t.Fatal("one-element vector accepted")
	}
	if _, _, err := GenVec(1, make([]uint64, MaxElems+1), 10, rng); err == nil {
		t.Fatal("vector over MaxElems accepted")
	}

	// the mutation: every element from the same conversion blocks
	saved := elemTweak
	elemTweak = func(int, int) uint64 { return 0 }
	defer func() { elemTweak = saved }()
	k0, _, err := GenVec(77, beta, 10, rng)
	if err != nil {
		t.Fatal(err)
	}
	if !vecLeaks(t, &k0, beta) {
		t.Fatal("a key whose elements share their conversion passed the pseudorandomness check")
	}
}

func BenchmarkEvalAllVec1024(b *testing.B) {
	k0, _, _ := GenVec(500, []uint64{1, 40}, 10, seeded(2))
	out := [][]uint64{make([]uint64, 1024), make([]uint64, 1024)}
	for b.Loop() {
		_ = k0.EvalAllVec(out)
	}
}

func BenchmarkEvalAllTwo1024(b *testing.B) {
	k0, _, _ := Gen(500, 1, 10, seeded(2))
	k1, _, _ := Gen(500, 40, 10, seeded(3))
	out := [][]uint64{make([]uint64, 1024), make([]uint64, 1024)}
	for b.Loop() {
		_ = k0.EvalAll(out[0])
		_ = k1.EvalAll(out[1])
	}
}

func BenchmarkGenVec10(b *testing.B) {
	rng := seeded(4)
	var d0, d1 []byte
	for b.Loop() {
		d0, d1, _ = AppendGenVec(d0[:0], d1[:0], 500, []uint64{1, 40}, 10, rng)
	}
}

func BenchmarkGenTwo10(b *testing.B) {
	rng := seeded(4)
	var d0, d1 []byte
	for b.Loop() {
		d0, d1, _ = AppendGen(d0[:0], d1[:0], 500, 1, 10, rng)
		d0, d1, _ = AppendGen(d0, d1, 500, 40, 10, rng)
	}
}

// split cuts b at the given lengths (cycled), with an empty piece after
// every third.
func split(b []byte, lens []int) [][]byte {
	var parts [][]byte
	for i := 0; len(b) > 0; i++ {
		n := min(lens[i%len(lens)], len(b))
		parts = append(parts, b[:n])
		b = b[n:]
		if i%3 == 2 {
			parts = append(parts, nil)
		}
	}
	return parts
}

// TestDecodeAllParts: keys decoded from pieces of any sizes equal those
// DecodeAll reads from the joined bytes; a section cut short or with a bad
// key is refused as DecodeAll refuses it.
func TestDecodeAllParts(t *testing.T) {
	rng := seeded(6)
	var enc []byte
	for i := 0; i < 40; i++ {
		enc, _, _ = AppendGenVec(enc, nil, uint64(i%1024), []uint64{1, 40}, 10, rng)
		enc, _, _ = AppendGenLess(enc, nil, uint64(i%4096), 7, 12, rng)
		enc, _, _ = AppendGen(enc, nil, uint64(i%512), 3, 9, rng)
	}
	want, err := DecodeAll(enc)
	if err != nil {
		t.Fatal(err)
	}
	for _, lens := range [][]int{{len(enc)}, {1}, {2, 3}, {7}, {100, 1, 250}, {4096}, {len(enc) - 1}} {
		got, err := DecodeAllParts(split(enc, lens))
		if err != nil {
			t.Fatalf("pieces %v: %v", lens, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("pieces %v: keys differ", lens)
		}
		if _, err := DecodeAllParts(split(enc[:len(enc)-1], lens)); err == nil {
			t.Fatalf("pieces %v: a section one byte short was taken", lens)
		}
		bad := append([]byte(nil), enc...)
		bad[0] = 99
		if _, err := DecodeAllParts(split(bad, lens)); err == nil {
			t.Fatalf("pieces %v: a key of version 99 was taken", lens)
		}
	}
	if keys, err := DecodeAllParts(nil); err != nil || len(keys) != 0 {
		t.Fatalf("no pieces: %d keys, %v", len(keys), err)
	}
}

// TestCursor: Take returns the bytes in order, in place where they lie in
// one piece, and nil past the end; Rest returns what is left.
func TestCursor(t *testing.T) {
	msg := []byte("0123456789abcdefghij")
	c := NewCursor(split(msg, []int{3, 5}))
	if c.Len() != len(msg) {
		t.Fatalf("Len %d", c.Len())
	}
	var got []byte
	for _, n := range []int{2, 1, 4, 0, 6} {
		b := c.Take(n)
		if len(b) != n {
			t.Fatalf("Take(%d) gave %d bytes", n, len(b))
		}
		got = append(got, b...)
	}
	if string(got) != string(msg[:13]) {
		t.Fatalf("took %q", got)
	}
	if c.Take(8) != nil || c.Len() != 7 {
		t.Fatal("Take past the end")
	}
	if p := c.Peek(nil, 3); string(p) != "def" {
		t.Fatalf("Peek %q", p)
	}
	var rest []byte
	for _, p := range c.Rest() {
		rest = append(rest, p...)
	}
	if string(rest) != string(msg[13:]) || c.Len() != 0 {
		t.Fatalf("Rest %q, Len %d", rest, c.Len())
	}
}
