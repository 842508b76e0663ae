package dpf

// Batched fixed-key AES-128 in Matyas–Meyer–Oseas mode for full-domain
// evaluation. Go's cipher.Block encrypts one block per call; expanding a
// DPF tree needs millions of independent blocks, which AES-NI can pipeline
// eight at a time (mmo_amd64.s). The result is bit-identical to
// mmo(cipher.Block, ...) with the same key; TestMMOBatchMatchesBlock checks
// both paths against crypto/aes.

import "encoding/binary"

// roundKeys is an expanded AES-128 key: the 11 round keys in FIPS-197 byte
// order, as AESENC takes them.
type roundKeys [11 * 16]byte

// expandKey128 is the AES-128 key schedule (FIPS-197 §5.2).
func expandKey128(key []byte) *roundKeys {
	var w [44]uint32
	for i := 0; i < 4; i++ {
		w[i] = binary.BigEndian.Uint32(key[4*i:])
	}
	rcon := uint32(1)
	for i := 4; i < 44; i++ {
		t := w[i-1]
		if i%4 == 0 {
			t = t<<8 | t>>24
			t = uint32(sbox[t>>24])<<24 | uint32(sbox[t>>16&0xff])<<16 | uint32(sbox[t>>8&0xff])<<8 | uint32(sbox[t&0xff])
			t ^= rcon << 24
			rcon = uint32(gmul(byte(rcon), 2))
		}
		w[i] = w[i-4] ^ t
	}
	rk := new(roundKeys)
	for i, v := range w {
		binary.BigEndian.PutUint32(rk[4*i:], v)
	}
	return rk
}

// sbox is the AES S-box, computed once from its definition (multiplicative
// inverse in GF(2^8) followed by the affine map).
var sbox = func() (s [256]byte) {
	for x := 0; x < 256; x++ {
		inv := byte(0)
		if x != 0 {
			// x^254 = x^-1 in GF(2^8)
			inv = 1
			b := byte(x)
			for e := 254; e > 0; e >>= 1 {
				if e&1 == 1 {
					inv = gmul(inv, b)
				}
				b = gmul(b, b)
			}
		}
		rot := func(v byte, n uint) byte { return v<<n | v>>(8-n) }
		s[x] = inv ^ rot(inv, 1) ^ rot(inv, 2) ^ rot(inv, 3) ^ rot(inv, 4) ^ 0x63
	}
	return s
}()

// gmul multiplies in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
func gmul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 == 1 {
			p ^= a
		}
		hi := a & 0x80
		a <<= 1
		if hi != 0 {
			a ^= 0x1b
		}
		b >>= 1
	}
	return p
}

// aesni and vaes say whether the assembly kernels run (mmo_amd64.go sets
// them from the CPU; vaes implies aesni): AES-NI and SSE4.1, and AVX-512
// VAES. Elsewhere they stay false, and the kernels' wrappers (mmoAsm,
// expandAsm, leavesAsm) report that they did nothing, so that the portable
// Go paths run. Tests clear them to check the portable paths against the
// assembly.
var aesni, vaes bool

// mmoKey is one fixed PRG key in both forms: the expanded schedule for the
// batched path and crypto/aes for the portable one.
type mmoKey struct {
	rk  *roundKeys
	blk interface{ Encrypt(dst, src []byte) }
}

// mmoBatch computes, for i < n, the seed dst[i*stride:] (two words) =
// AES_k(s) xor s with s = src[2i:2i+2], seeds stored as two little-endian
// words (byte 0 of the block is the low byte of word 0). stride is in words.
func (k *mmoKey) mmoBatch(dst, src []uint64, n, stride int) {
	if n <= 0 {
		return
	}
	_ = src[2*n-1]
	_ = dst[(n-1)*stride+1]
	if mmoAsm(k.rk, dst, src, n, stride) {
		return
	}
	var in, out [16]byte
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(in[:8], src[2*i])
		binary.LittleEndian.PutUint64(in[8:], src[2*i+1])
		k.blk.Encrypt(out[:], in[:])
		dst[i*stride] = binary.LittleEndian.Uint64(out[:8]) ^ src[2*i]
		dst[i*stride+1] = binary.LittleEndian.Uint64(out[8:]) ^ src[2*i+1]
	}
}
