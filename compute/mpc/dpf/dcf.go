package dpf

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Distributed comparison functions (DCF): a key pair for
// f(x) = beta if x < alpha, else 0, over [0, 2^n) with outputs in Z_2^64,
// in the construction of Boyle, Chandran, Gilboa, Gupta, Ishai, Kumar and
// Rathee ("Function Secret Sharing for Mixed-Mode and Fixed-Point Secure
// Computation", Eurocrypt 2021, Fig. 1). The tree is the DPF's (same seeds,
// control bits and PRG G(s) = (sL, tL, sR, tR)); each level also draws two
// value words (vL, vR) = MMO_V(s) and carries a value correction word, and
// a party's share of f(x) is the sum, along x's path, of
// (-1)^b * (vChild + t * VCW) plus (-1)^b * (Convert(s)_j + t * Final_j) at
// the end. The tree ends l = min(n, 2) levels above the points: a leaf
// covers 2^l points, j = x mod 2^l, and Convert(s) is the DPF's (spec
// §3.2: outputs 2i and 2i+1 are the halves of G_C(s xor i)), with one final
// word per output; the dealer sets the leaf on alpha's path to give
// beta*[j < alpha mod 2^l]. (Version 3 ended the tree at the points, l = 0:
// 25 bytes more per key and two more levels of three AES calls per point.)
// Unlike a DPF a comparison key is evaluated at single points: the
// masked-comparison gates of compute/mpc read a handful of points per key
// (spec/05-mpc.md §3.4, §6.9).
//
// Wire format of a comparison key (spec/05-mpc.md §3.4), integers
// big-endian:
//
//	version  u8   = 5 (CmpVersion)
//	bits     u8   = n, 1 <= n <= MaxCmpBits
//	party    u8   = 0 or 1
//	seed     [16]
//	n-l times:  sCW [16], tCW u8 (bit 0 = left, bit 1 = right), vCW u64
//	final    2^l u64
//
// so a key is 19 + 25*(n-l) + 8*2^l bytes (CmpKeySize): 25*n + 1 from n = 2.

// CmpVersion is the version byte of a comparison key. (Version 3 had no
// early termination.)
const CmpVersion = 5

// cmpLeafBits is the number of levels a comparison key's leaf covers: its
// 2^l final words (8 bytes each) replace l levels of 25 bytes, which pays
// up to l = 2.
const cmpLeafBits = 2

// cmpLeafLevels returns l = min(bits, cmpLeafBits).
func cmpLeafLevels(bits int) int { return min(bits, cmpLeafBits) }

// MaxCmpBits bounds a comparison key's domain: the ring's 64 bits.
const MaxCmpBits = 64

// valueKey is the fixed PRG key of the value words (spec §3.4).
var valueKey = newMMOKey("unfed/mpc/dcf/value")

// CmpKeySize returns the encoded size of a comparison key over 2^bits.
func CmpKeySize(bits int) int {
	l := cmpLeafLevels(bits)
	return 19 + 25*(bits-l) + 8<<uint(l)
}

// AppendGenLess generates the key pair of x -> beta * [x < alpha] over
// [0, 2^bits) and appends party 0's encoding to dst0 and party 1's to dst1.
// It reads 32 bytes of rand for the two root seeds.
func AppendGenLess(dst0, dst1 []byte, alpha, beta uint64, bits int, rand io.Reader) ([]byte, []byte, error) {
	if bits < 1 || bits > MaxCmpBits {
		return dst0, dst1, fmt.Errorf("dpf: comparison domain bits %d out of range [1,%d]", bits, MaxCmpBits)
	}
	if bits < 64 && alpha>>uint(bits) != 0 {
		return dst0, dst1, fmt.Errorf("dpf: alpha %d outside domain 2^%d", alpha, bits)
	}
	var root [32]byte
	if _, err := io.ReadFull(rand, root[:]); err != nil {
		return dst0, dst1, fmt.Errorf("dpf: seed: %w", err)
	}
	root[0] &^= 1
	root[16] &^= 1
	size := CmpKeySize(bits)
	dst0, dst1 = grow(dst0, size), grow(dst1, size)
	dst0 = append(append(dst0, CmpVersion, byte(bits), 0), root[:16]...)
	dst1 = append(append(dst1, CmpVersion, byte(bits), 1), root[16:]...)

	// s holds both parties' seeds as little-endian words (party 0's, then
	// party 1's), as in AppendGen.
	var s, l, r, v [4]uint64
	for i := range s {
		s[i] = binary.LittleEndian.Uint64(root[8*i:])
	}
	var t0, t1 uint64 = 0, 1
	var va uint64 // V_alpha: the sum of both shares along alpha's path so far
	lb := cmpLeafLevels(bits)
	for i := 0; i < bits-lb; i++ {
		bit := alpha >> uint(bits-1-i) & 1
		fixed.l.mmoBatch(l[:], s[:], 2, 2)
		fixed.r.mmoBatch(r[:], s[:], 2, 2)
		valueKey.mmoBatch(v[:], s[:], 2, 2)
		tl0, tr0, tl1, tr1 := l[0]&1, r[0]&1, l[2]&1, r[2]&1
		l[0] &^= 1
		l[2] &^= 1
		r[0] &^= 1
		r[2] &^= 1
		// v[0], v[1] are party 0's (vL, vR), v[2], v[3] party 1's.
		keep, lose := &l, &r
		tk0, tk1 := tl0, tl1
		vk0, vk1, vl0, vl1 := v[0], v[2], v[1], v[3]
		if bit == 1 {
			keep, lose = &r, &l
			tk0, tk1 = tr0, tr1
			vk0, vk1, vl0, vl1 = v[1], v[3], v[0], v[2]
		}
		cw := [2]uint64{lose[0] ^ lose[2], lose[1] ^ lose[3]}
		vcw := vl1 - vl0 - va
		if bit == 1 { // the points that leave alpha's path here, to the left, are below alpha
			vcw += beta
		}
		if t1 == 1 {
			vcw = -vcw
		}
		step := vcw
		if t1 == 1 {
			step = -step
		}
		va += vk0 - vk1 + step
		tlcw, trcw, tcwKeep := controlCW(tl0, tl1, tr0, tr1, bit)
		var enc [25]byte
		putCW(enc[:], cw, tlcw, trcw)
		binary.BigEndian.PutUint64(enc[17:], vcw)
		dst0 = append(dst0, enc[:]...)
		dst1 = append(dst1, enc[:]...)
		s = *keep
		s[0] ^= cw[0] & -t0
		s[1] ^= cw[1] & -t0
		s[2] ^= cw[0] & -t1
		s[3] ^= cw[1] & -t1
		t0, t1 = tk0^(t0&tcwKeep), tk1^(t1&tcwKeep)
	}
	// The leaf on alpha's path: output j (x = alpha's prefix, then j) sums
	// to beta*[j < alpha mod 2^l]. Convert as the DPF does: block i is
	// G_C(s xor i), i in byte 15, outputs 2i and 2i+1 its halves.
	n := 1 << uint(lb)
	blocks := (n + 1) / 2
	var in, c [2 * 2 * (1 << cmpLeafBits) / 2]uint64
	for p := 0; p < 2; p++ {
		for i := 0; i < blocks; i++ {
			in[2*(p*blocks+i)] = s[2*p]
			in[2*(p*blocks+i)+1] = s[2*p+1] ^ uint64(i)<<56
		}
	}
	fixed.c.mmoBatch(c[:], in[:], 2*blocks, 2)
	low := alpha & uint64(n-1)
	for j := 0; j < n; j++ {
		final := c[2*blocks+j] - c[j] - va
		if uint64(j) < low {
			final += beta
		}
		if t1 == 1 {
			final = -final
		}
		dst0 = binary.BigEndian.AppendUint64(dst0, final)
		dst1 = binary.BigEndian.AppendUint64(dst1, final)
	}
	return dst0, dst1, nil
}

// GenLess returns the two comparison keys of AppendGenLess.
func GenLess(alpha, beta uint64, bits int, rand io.Reader) (Key, Key, error) {
	return decodePair(AppendGenLess(nil, nil, alpha, beta, bits, rand))
}

// EvalLess evaluates comparison keys at single points: out[j] is this
// party's share of keys[which[j]] at xs[j]. Every key must be a comparison
// key of one party over one domain, and every point inside it. The points
// are evaluated together, level by level, so that the PRG runs batched.
func EvalLess(keys []Key, which []int32, xs, out []uint64) error {
	n := len(xs)
	if len(which) != n || len(out) != n {
		return fmt.Errorf("dpf: %d points, %d key indices, %d outputs", n, len(which), len(out))
	}
	if n == 0 {
		return nil
	}
	var bits int
	var party byte
	for j, w := range which {
		if w < 0 || int(w) >= len(keys) {
			return fmt.Errorf("dpf: key index %d of %d", w, len(keys))
		}
		k := &keys[w]
		if !k.Cmp {
			return fmt.Errorf("dpf: point key where a comparison key is due")
		}
		if j == 0 {
			bits, party = k.Bits, k.Party
		}
		if k.Bits != bits || k.Party != party {
			return fmt.Errorf("dpf: comparison keys of mixed domains or parties")
		}
		if bits < 64 && xs[j]>>uint(bits) != 0 {
			return fmt.Errorf("dpf: point %d outside domain 2^%d", xs[j], bits)
		}
	}
	seeds := make([]uint64, 2*n)
	l, r, v := make([]uint64, 2*n), make([]uint64, 2*n), make([]uint64, 2*n)
	t := make([]uint64, n)
	acc := make([]uint64, n)
	for j, w := range which {
		k := &keys[w]
		seeds[2*j] = binary.LittleEndian.Uint64(k.Seed[:8])
		seeds[2*j+1] = binary.LittleEndian.Uint64(k.Seed[8:])
		t[j] = uint64(k.Party)
	}
	lb := cmpLeafLevels(bits)
	for i := 0; i < bits-lb; i++ {
		fixed.l.mmoBatch(l, seeds, n, 2)
		fixed.r.mmoBatch(r, seeds, n, 2)
		valueKey.mmoBatch(v, seeds, n, 2)
		// Branch-free: the path bit and the control bit are random, so
		// branches on them would be mispredicted half the time. bm and tm
		// are all ones where the bit is set.
		shift := uint(bits - 1 - i)
		for j, w := range which {
			k := &keys[w]
			bit := xs[j] >> shift & 1
			bm, tj := -bit, t[j]
			tm := -tj
			l0, l1, r0, r1 := l[2*j], l[2*j+1], r[2*j], r[2*j+1]
			// the child on the path, its control bit the low bit of
			// its first word
			s0 := l0 ^ (l0^r0)&bm
			s1 := l1 ^ (l1^r1)&bm
			tb := s0 & 1
			s0 &^= 1
			scw := &k.SCW[i]
			s0 ^= binary.LittleEndian.Uint64(scw[:8]) & tm
			s1 ^= binary.LittleEndian.Uint64(scw[8:]) & tm
			tb ^= uint64(k.TCW[i]) >> bit & 1 & tj
			v0, v1 := v[2*j], v[2*j+1]
			acc[j] += k.VCW[i]&tm + (v0 ^ (v0^v1)&bm)
			seeds[2*j], seeds[2*j+1], t[j] = s0, s1, tb
		}
	}
	// the leaf: output j = x mod 2^l is half j&1 of G_C(s xor j>>1)
	lmask := uint64(1)<<uint(lb) - 1
	for j := range xs {
		seeds[2*j+1] ^= (xs[j] & lmask >> 1) << 56
	}
	fixed.c.mmoBatch(l, seeds, n, 2)
	for j, w := range which {
		jl := xs[j] & lmask
		s := acc[j] + l[2*j+int(jl&1)] + keys[w].Final[jl]&-t[j]
		if party == 1 {
			s = -s
		}
		out[j] = s
	}
	return nil
}

// evalLess evaluates one comparison key at x (Eval's path for them).
func (k *Key) evalLess(x uint64) uint64 {
	out := []uint64{0}
	if err := EvalLess([]Key{*k}, []int32{0}, []uint64{x}, out); err != nil {
		return 0
	}
	return out[0]
}

// appendCmp appends the encoding of the comparison key k to b.
func (k *Key) appendCmp(b []byte) ([]byte, error) {
	n := k.Bits
	if n < 1 || n > MaxCmpBits || k.Party > 1 {
		return nil, fmt.Errorf("%w: inconsistent comparison key", ErrKey)
	}
	if d := n - cmpLeafLevels(n); len(k.SCW) != d || len(k.TCW) != d || len(k.VCW) != d || len(k.Final) != 1<<uint(n-d) {
		return nil, fmt.Errorf("%w: inconsistent comparison key", ErrKey)
	}
	b = append(append(b, CmpVersion, byte(n), k.Party), k.Seed[:]...)
	for i := range k.SCW {
		b = append(append(b, k.SCW[i][:]...), k.TCW[i])
		b = binary.BigEndian.AppendUint64(b, k.VCW[i])
	}
	for _, f := range k.Final {
		b = binary.BigEndian.AppendUint64(b, f)
	}
	return b, nil
}

// fillCmp decodes the comparison key encoded in b (header checked) into k,
// with its correction words in the given slices of length bits - l (fin:
// 2^l).
func fillCmp(k *Key, b []byte, scw [][16]byte, tcw []byte, vcw, fin []uint64) error {
	*k = Key{Bits: int(b[1]), Party: b[2], Cmp: true, SCW: scw, TCW: tcw, VCW: vcw, Final: fin}
	p := b[3:]
	copy(k.Seed[:], p[:16])
	p = p[16:]
	for i := range k.SCW {
		copy(k.SCW[i][:], p[:16])
		if p[16]&^3 != 0 {
			return fmt.Errorf("%w: reserved control bits set", ErrKey)
		}
		k.TCW[i] = p[16]
		k.VCW[i] = binary.BigEndian.Uint64(p[17:])
		p = p[25:]
	}
	for i := range k.Final {
		k.Final[i] = binary.BigEndian.Uint64(p[8*i:])
	}
	return nil
}
