package dpf

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Vector keys: a DPF whose payload at the point alpha is a vector of m ring
// elements (beta_0, ..., beta_{m-1}) (Boyle, Gilboa and Ishai, CCS 2016: a
// longer output of the leaf conversion). The tree is a point key's (same
// seeds, correction words and PRG); only the leaf conversion is longer.
// Element e of a leaf's 2^l outputs is converted from the blocks
// G_C(s xor (e*2^(l-1) + i)), i < 2^(l-1) in byte 15, as a point key's
// outputs are from G_C(s xor i), and has its own 2^l final correction
// words. A vector key of m elements costs one tree and m conversions,
// against m trees and m conversions for m point keys at the same point
// (spec/05-mpc.md §3.5).
//
// Wire format (integers big-endian):
//
//	version  u8   = 4 (VecVersion)
//	bits     u8   = n, 1 <= n <= MaxBits
//	party    u8   = 0 or 1
//	elems    u8   = m, 2 <= m <= MaxElems
//	seed     [16]
//	n-l times:   sCW [16], tCW u8 (bit 0 = left, bit 1 = right, other bits 0)
//	final    m * 2^l u64, element-major
//
// so a key is 20 + 17*(n-l) + 8*m*2^l bytes (VecKeySize).

// VecVersion is the version byte of a vector key.
const VecVersion = 4

// MaxElems bounds a vector key's payload.
const MaxElems = 4

// VecKeySize returns the encoded size of a vector key of elems elements
// over 2^bits.
func VecKeySize(bits, elems int) int {
	l := leafLevels(bits)
	return 20 + 17*(bits-l) + 8*elems<<uint(l)
}

// AppendGenVec generates the key pair of the point function alpha -> beta
// (a vector of 2..MaxElems ring elements) over [0, 2^bits) and appends party
// 0's encoding to dst0 and party 1's to dst1. It reads 32 bytes of rand for
// the two root seeds, and its tree is the one AppendGen makes from them.
func AppendGenVec(dst0, dst1 []byte, alpha uint64, beta []uint64, bits int, rand io.Reader) ([]byte, []byte, error) {
	m := len(beta)
	if m < 2 || m > MaxElems {
		return dst0, dst1, fmt.Errorf("dpf: vector payload of %d elements, want 2..%d", m, MaxElems)
	}
	var root [32]byte
	if err := genCheck(alpha, bits, &root, rand); err != nil {
		return dst0, dst1, err
	}
	size := VecKeySize(bits, m)
	dst0, dst1 = grow(dst0, size), grow(dst1, size)
	dst0 = append(dst0, VecVersion, byte(bits), 0, byte(m))
	dst1 = append(dst1, VecVersion, byte(bits), 1, byte(m))
	dst0, dst1, s, t1 := appendTree(dst0, dst1, alpha, bits, &root)
	for e, b := range beta {
		dst0, dst1 = appendFinal(dst0, dst1, &s, t1, alpha, b, bits, elemTweak(e, bits))
	}
	return dst0, dst1, nil
}

// elemTweak is the tweak of element e's conversion blocks: e*2^(l-1), in
// byte 15 (a variable only so that a test can break it and see its
// pseudorandomness test fail).
var elemTweak = func(e, bits int) uint64 { return uint64(e) << uint(leafLevels(bits)-1) }

// GenVec returns the two vector keys of AppendGenVec.
func GenVec(alpha uint64, beta []uint64, bits int, rand io.Reader) (Key, Key, error) {
	return decodePair(AppendGenVec(nil, nil, alpha, beta, bits, rand))
}

// EvalVec writes this party's share of each element of f(x) to out
// (len(out) = Elems).
func (k *Key) EvalVec(x uint64, out []uint64) error {
	if k.Elems == 0 || len(out) != k.Elems {
		return fmt.Errorf("dpf: EvalVec of a key of %d elements into %d outputs", k.Elems, len(out))
	}
	s, t := k.walk(x)
	L := len(k.Final) / k.Elems
	c := make([]uint64, L)
	j := x & uint64(L-1)
	for e := range out {
		in := s
		in[15] ^= byte(elemTweak(e, k.Bits))
		convert(&in, c)
		v := c[j] + k.Final[e*L+int(j)]*uint64(t)
		if k.Party == 1 {
			v = -v
		}
		out[e] = v
	}
	return nil
}

// EvalAllVec writes this party's shares of element e of f(0..n-1) to
// out[e], for every element (len(out) = Elems, all of one length
// n <= 2^Bits). The tree is expanded once (EvalAll); each element costs one
// leaf conversion.
func (k *Key) EvalAllVec(out [][]uint64) error {
	if k.Cmp || k.Elems == 0 || len(out) != k.Elems {
		return fmt.Errorf("dpf: EvalAllVec of a key of %d elements into %d outputs", k.Elems, len(out))
	}
	n := len(out[0])
	for _, o := range out {
		if len(o) != n {
			return fmt.Errorf("dpf: EvalAllVec outputs of different lengths")
		}
	}
	if n > 1<<uint(k.Bits) {
		return fmt.Errorf("dpf: output length %d exceeds domain %d", n, 1<<uint(k.Bits))
	}
	if n == 0 {
		return nil
	}
	L := len(k.Final) / k.Elems
	leaves := (n + L - 1) / L
	sc := getScratch(leaves, L)
	defer scratchPool.Put(sc)
	seeds, curT, tw := k.expandTree(sc, leaves)
	if cap(sc.c) < L*leaves {
		sc.c = make([]uint64, L*leaves)
	}
	for e := range out {
		// leafOutputs overwrites its seeds: all but the last element
		// convert a tweaked copy
		in := seeds[: 2*leaves : cap(seeds)]
		if e < k.Elems-1 {
			in = sc.c[: 2*leaves : L*leaves]
			copy(in, seeds[:2*leaves])
		}
		if tweak := elemTweak(e, k.Bits) << 56; tweak != 0 {
			for j := 1; j < 2*leaves; j += 2 {
				in[j] ^= tweak
			}
		}
		leafOutputs(in, curT, tw, k.Final[e*L:(e+1)*L], k.Party, out[e])
	}
	return nil
}

// fillVec decodes the vector key encoded in b (header checked) into k.
func fillVec(k *Key, b []byte, scw [][16]byte, tcw []byte, fin []uint64) error {
	if err := fill(k, b, 4, scw, tcw, fin); err != nil {
		return err
	}
	k.Elems = int(b[3])
	return nil
}

// appendVec appends the encoding of the vector key k to b.
func (k *Key) appendVec(b []byte) ([]byte, error) {
	l := leafLevels(k.Bits)
	if k.Bits < 1 || k.Bits > MaxBits || k.Party > 1 || k.Elems < 2 || k.Elems > MaxElems ||
		len(k.SCW) != k.Bits-l || len(k.TCW) != k.Bits-l || len(k.Final) != k.Elems<<uint(l) {
		return nil, fmt.Errorf("%w: inconsistent key", ErrKey)
	}
	b = append(b, VecVersion, byte(k.Bits), k.Party, byte(k.Elems))
	b = append(b, k.Seed[:]...)
	for i := range k.SCW {
		b = append(b, k.SCW[i][:]...)
		b = append(b, k.TCW[i])
	}
	for _, f := range k.Final {
		b = binary.BigEndian.AppendUint64(b, f)
	}
	return b, nil
}
