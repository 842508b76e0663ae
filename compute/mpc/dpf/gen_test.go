package dpf

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAppendGenMatchesReference checks the batched generator against the
// textbook one (refGen, one AES call at a time through crypto/aes) on the
// same randomness, with and without the assembly, over domains from 2^1 to
// 2^18: same bytes, so the keys are those the spec's construction gives.
func TestAppendGenMatchesReference(t *testing.T) {
	for _, portable := range []bool{false, true} {
		if portable {
			a, v := aesni, vaes
			aesni, vaes = false, false
			defer func() { aesni, vaes = a, v }()
		}
		for bits := 1; bits <= 18; bits++ {
			for i, alpha := range []uint64{0, 1<<uint(bits) - 1, uint64(bits*977) % (1 << uint(bits))} {
				beta := uint64(0xfedcba9876543210) * uint64(i+1)
				w0, w1, err := refGen(alpha, beta, bits, seeded(uint64(100*bits+i)))
				if err != nil {
					t.Fatal(err)
				}
				a, b, err := AppendGen([]byte("x"), nil, alpha, beta, bits, seeded(uint64(100*bits+i)))
				if err != nil {
					t.Fatal(err)
				}
				ra, _ := w0.MarshalBinary()
				rb, _ := w1.MarshalBinary()
				if !bytes.Equal(a, append([]byte("x"), ra...)) || !bytes.Equal(b, rb) {
					t.Fatalf("portable %v bits %d alpha %d: AppendGen differs from the reference", portable, bits, alpha)
				}
				k0, k1, err := Gen(alpha, beta, bits, seeded(uint64(100*bits+i)))
				if err != nil {
					t.Fatal(err)
				}
				ga, _ := k0.MarshalBinary()
				gb, _ := k1.MarshalBinary()
				if !bytes.Equal(ga, ra) || !bytes.Equal(gb, rb) {
					t.Fatalf("portable %v bits %d alpha %d: Gen differs from the reference", portable, bits, alpha)
				}
			}
		}
	}
}

// TestGenVectors regenerates the keys of spec/vectors/mpc/dpf.txt (the
// point function 5 -> 1000 over [0, 16), and the vector keys of 5 ->
// (1000, 37)) from their root seeds.
func TestGenVectors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "spec", "vectors", "mpc", "dpf.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var want, wantVec [][]byte
	var seeds []byte
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "vkey" {
			b, err := hex.DecodeString(f[1])
			if err != nil {
				t.Fatal(err)
			}
			wantVec = append(wantVec, b)
		}
		if f := strings.Fields(line); len(f) == 2 && f[0] == "key" {
			b, err := hex.DecodeString(f[1])
			if err != nil {
				t.Fatal(err)
			}
			k, _, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, b)
			seeds = append(seeds, k.Seed[:]...)
		}
	}
	if len(want) != 2 {
		t.Fatalf("%d vector keys, want 2", len(want))
	}
	a, b, err := AppendGen(nil, nil, 5, 1000, 4, bytes.NewReader(seeds))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, want[0]) || !bytes.Equal(b, want[1]) {
		t.Fatalf("regenerated keys differ from the vectors:\n%x\n%x", a, b)
	}
	if len(wantVec) != 2 {
		t.Fatalf("%d vector keys, want 2", len(wantVec))
	}
	a, b, err = AppendGenVec(nil, nil, 5, []uint64{1000, 37}, 4, bytes.NewReader(seeds))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, wantVec[0]) || !bytes.Equal(b, wantVec[1]) {
		t.Fatalf("regenerated vector keys differ from the vectors:\n%x\n%x", a, b)
	}
}

// refGen is the generator as the spec describes it, one block at a time
// (the implementation before the batched AppendGen).
// rand supplies the two root seeds (32 bytes).
func refGen(alpha uint64, beta uint64, bits int, rand io.Reader) (Key, Key, error) {
	if bits < 1 || bits > MaxBits {
		return Key{}, Key{}, fmt.Errorf("dpf: domain bits %d out of range [1,%d]", bits, MaxBits)
	}
	if alpha>>uint(bits) != 0 {
		return Key{}, Key{}, fmt.Errorf("dpf: alpha %d outside domain 2^%d", alpha, bits)
	}
	var s0, s1 [16]byte
	if _, err := io.ReadFull(rand, s0[:]); err != nil {
		return Key{}, Key{}, fmt.Errorf("dpf: seed: %w", err)
	}
	if _, err := io.ReadFull(rand, s1[:]); err != nil {
		return Key{}, Key{}, fmt.Errorf("dpf: seed: %w", err)
	}
	s0[0] &^= 1
	s1[0] &^= 1
	lb := leafLevels(bits)
	depth := bits - lb
	k0 := Key{Bits: bits, Party: 0, Seed: s0, SCW: make([][16]byte, depth), TCW: make([]byte, depth)}
	k1 := Key{Bits: bits, Party: 1, Seed: s1, SCW: make([][16]byte, depth), TCW: make([]byte, depth)}
	var t0, t1 byte = 0, 1
	for i := 0; i < depth; i++ {
		bit := byte(alpha>>uint(bits-1-i)) & 1
		var l0, r0, l1, r1 [16]byte
		tl0, tr0 := expand(&s0, &l0, &r0)
		tl1, tr1 := expand(&s1, &l1, &r1)
		var scw [16]byte
		if bit == 0 { // keep left, lose right
			scw = r0
			xor16(&scw, &r1)
		} else {
			scw = l0
			xor16(&scw, &l1)
		}
		tlcw := tl0 ^ tl1 ^ bit ^ 1
		trcw := tr0 ^ tr1 ^ bit
		k0.SCW[i], k1.SCW[i] = scw, scw
		k0.TCW[i], k1.TCW[i] = tlcw|trcw<<1, tlcw|trcw<<1
		var ks0, ks1 [16]byte
		var kt0, kt1, tcwKeep byte
		if bit == 0 {
			ks0, ks1, kt0, kt1, tcwKeep = l0, l1, tl0, tl1, tlcw
		} else {
			ks0, ks1, kt0, kt1, tcwKeep = r0, r1, tr0, tr1, trcw
		}
		if t0 == 1 {
			xor16(&ks0, &scw)
		}
		if t1 == 1 {
			xor16(&ks1, &scw)
		}
		s0, s1 = ks0, ks1
		t0, t1 = kt0^(t0&tcwKeep), kt1^(t1&tcwKeep)
	}
	n := 1 << uint(lb)
	c0, c1 := make([]uint64, n), make([]uint64, n)
	convert(&s0, c0)
	convert(&s1, c1)
	fin := make([]uint64, n)
	for j := range fin {
		v := c1[j] - c0[j]
		if uint64(j) == alpha&uint64(n-1) {
			v += beta
		}
		if t1 == 1 {
			v = -v
		}
		fin[j] = v
	}
	k0.Final, k1.Final = fin, append([]uint64(nil), fin...)
	return k0, k1, nil
}
