package dpf

import (
	"crypto/aes"
	"encoding/binary"
	"testing"
)

// TestExpandKeyMatchesCryptoAES checks the key schedule and S-box through the
// FIPS-197 Appendix C.1 vector and against crypto/aes on the PRG keys.
func TestExpandKeyMatchesCryptoAES(t *testing.T) {
	key := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	rk := expandKey128(key)
	// FIPS-197 A.1: the last round key of 2b7e1516 28aed2a6 abf71588 09cf4f3c.
	rkA := expandKey128([]byte{0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c})
	want := []byte{0xd0, 0x14, 0xf9, 0xa8, 0xc9, 0xee, 0x25, 0x89, 0xe1, 0x3f, 0x0c, 0xc8, 0xb6, 0x63, 0x0c, 0xa6}
	if string(rkA[160:]) != string(want) {
		t.Fatalf("round key 10 = %x, want %x", rkA[160:], want)
	}
	if string(rk[:16]) != string(key) {
		t.Fatal("round key 0 is not the key")
	}
	if sbox[0] != 0x63 || sbox[1] != 0x7c || sbox[0x53] != 0xed {
		t.Fatalf("S-box: %x %x %x", sbox[0], sbox[1], sbox[0x53])
	}
}

// TestMMOBatchMatchesBlock runs the batched MMO (AES-NI where present) and
// the portable path on the same seeds, at every batch length around the
// 8- and 16-block unrollings, with packed and interleaved outputs, and compares both
// with crypto/aes.
func TestMMOBatchMatchesBlock(t *testing.T) {
	rng := seeded(7)
	for _, k := range []*mmoKey{&fixed.l, &fixed.r, &fixed.c} {
		for n := 0; n <= 53; n++ {
			src := make([]uint64, 2*n+2)
			var b [8]byte
			for i := range src {
				rng.Read(b[:])
				src[i] = binary.LittleEndian.Uint64(b[:])
			}
			for _, stride := range []int{2, 4} {
				want := make([]uint64, stride*n+2)
				for i := 0; i < n; i++ {
					var in, out [16]byte
					binary.LittleEndian.PutUint64(in[:8], src[2*i])
					binary.LittleEndian.PutUint64(in[8:], src[2*i+1])
					c, _ := aes.NewCipher(keyOf(k))
					c.Encrypt(out[:], in[:])
					want[i*stride] = binary.LittleEndian.Uint64(out[:8]) ^ src[2*i]
					want[i*stride+1] = binary.LittleEndian.Uint64(out[8:]) ^ src[2*i+1]
				}
				// portable, AES-NI alone, and with VAES where present
				for path := 0; path < 3; path++ {
					if path > 0 && !aesni || path == 2 && !vaes {
						continue
					}
					got := make([]uint64, stride*n+2)
					switch path {
					case 0:
						portable(func() { k.mmoBatch(got, src, n, stride) })
					case 1:
						hadVAES := vaes
						vaes = false
						k.mmoBatch(got, src, n, stride)
						vaes = hadVAES
					default:
						k.mmoBatch(got, src, n, stride)
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("n=%d stride=%d path=%d: word %d = %x, want %x", n, stride, path, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// keyOf recovers the AES key of a fixed PRG key from its schedule.
func keyOf(k *mmoKey) []byte { return k.rk[:16] }

// TestEvalAllPortableMatchesAsm checks that full-domain evaluation gives the
// same shares with and without the assembly, and with the AES-NI kernels
// but without the VAES ones, for both parties' keys (party 1's
// outputs are negated) and domains that end inside a leaf or leave a
// level with an odd number of parents.
func TestEvalAllPortableMatchesAsm(t *testing.T) {
	if !aesni {
		t.Log("no AES-NI here: only the portable path runs (TestDPF covers it)")
		return
	}
	if !vaes {
		t.Log("no VAES here: the AES-NI kernels alone run")
	}
	rng := seeded(11)
	for _, v := range []int{1, 2, 3, 5, 8, 17, 100, 513, 4096, 4100, 32000, 151936} {
		bits := BitsFor(v)
		k0, k1, err := Gen(uint64(v/2), 99, bits, rng)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []Key{k0, k1} {
			a, p, n := make([]uint64, v), make([]uint64, v), make([]uint64, v)
			if err := k.EvalAll(a); err != nil {
				t.Fatal(err)
			}
			portable(func() { err = k.EvalAll(p) })
			if err != nil {
				t.Fatal(err)
			}
			hadVAES := vaes
			vaes = false
			err = k.EvalAll(n)
			vaes = hadVAES
			if err != nil {
				t.Fatal(err)
			}
			for i := range a {
				if a[i] != p[i] || n[i] != p[i] {
					t.Fatalf("V=%d party %d: share %d differs between the assembly paths and the portable one", v, k.Party, i)
				}
			}
		}
	}
}

// portable runs f with the assembly kernels switched off.
func portable(f func()) {
	a, v := aesni, vaes
	aesni, vaes = false, false
	defer func() { aesni, vaes = a, v }()
	f()
}
