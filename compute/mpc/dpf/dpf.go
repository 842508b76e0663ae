// Package dpf implements a two-party distributed point function (DPF) in the
// tree construction of Boyle, Gilboa and Ishai (CCS 2016), with one level of
// early termination, an AES-128 based length-doubling PRG and outputs in the
// ring Z_2^64.
//
// A key pair (k0, k1) generated for the point function f_{alpha,beta} over the
// domain [0, 2^n) satisfies Eval(k0, x) + Eval(k1, x) = beta if x == alpha and
// 0 otherwise (mod 2^64). Each key alone is pseudorandom and reveals nothing
// about alpha or beta. EvalAll expands the whole domain level by level in
// O(2^n) PRG calls.
//
// Wire format of a key (spec/05-mpc.md §3.3), all integers big-endian:
//
//	version  u8   = 1
//	bits     u8   = n, 1 <= n <= MaxBits
//	party    u8   = 0 or 1
//	seed     [16]
//	n-1 times:   sCW [16], tCW u8 (bit 0 = left, bit 1 = right, other bits 0)
//	final CW u64, u64   (output correction for the two leaves of a node)
//
// so a key is 18 + 17*n bytes.
package dpf

import (
	"crypto/aes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Version is the key encoding version.
const Version = 1

// MaxBits bounds the domain so that EvalAll of a key read from the network
// allocates at most 2^MaxBits outputs.
const MaxBits = 24

// ErrKey reports a malformed key encoding.
var ErrKey = errors.New("dpf: malformed key")

// KeySize returns the encoded size in bytes of a key over a 2^bits domain.
func KeySize(bits int) int { return 18 + 17*bits }

// Key is one party's share of a point function.
type Key struct {
	Bits  int // domain is [0, 2^Bits)
	Party byte
	Seed  [16]byte
	SCW   [][16]byte // len Bits-1
	TCW   []byte     // len Bits-1, bit 0 left, bit 1 right
	Final [2]uint64
}

// prg holds the fixed-key AES ciphers (spec §3.2). The keys are public
// constants: SHA-256 of the label, first 16 bytes.
type prg struct{ l, r, c mmoKey }

var fixed = newPRG()

func newPRG() prg {
	mk := func(label string) mmoKey {
		h := sha256.Sum256([]byte(label))
		b, err := aes.NewCipher(h[:16])
		if err != nil {
			panic(err) // unreachable: 16-byte key
		}
		return mmoKey{rk: expandKey128(h[:16]), blk: b}
	}
	return prg{l: mk("unfed/mpc/dpf/prg/left"), r: mk("unfed/mpc/dpf/prg/right"), c: mk("unfed/mpc/dpf/convert")}
}

// mmo computes AES_k(s) xor s (Matyas–Meyer–Oseas).
func mmo(k *mmoKey, dst, s *[16]byte) {
	k.blk.Encrypt(dst[:], s[:])
	for i := range dst {
		dst[i] ^= s[i]
	}
}

// expand is the length-doubling PRG G(s) = (sL, tL, sR, tR); the control bit
// is the low bit of byte 0 of each half, which is then cleared.
func expand(s *[16]byte, sl, sr *[16]byte) (tl, tr byte) {
	mmo(&fixed.l, sl, s)
	mmo(&fixed.r, sr, s)
	tl, tr = sl[0]&1, sr[0]&1
	sl[0] &^= 1
	sr[0] &^= 1
	return tl, tr
}

// convert maps a leaf seed to two ring elements.
func convert(s *[16]byte) [2]uint64 {
	var o [16]byte
	mmo(&fixed.c, &o, s)
	return [2]uint64{binary.LittleEndian.Uint64(o[:8]), binary.LittleEndian.Uint64(o[8:])}
}

func xor16(a *[16]byte, b *[16]byte) {
	for i := range a {
		a[i] ^= b[i]
	}
}

// Gen returns the two keys of the point function alpha -> beta over [0, 2^bits).
// rand supplies the two root seeds (32 bytes).
func Gen(alpha uint64, beta uint64, bits int, rand io.Reader) (Key, Key, error) {
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
	k0 := Key{Bits: bits, Party: 0, Seed: s0, SCW: make([][16]byte, bits-1), TCW: make([]byte, bits-1)}
	k1 := Key{Bits: bits, Party: 1, Seed: s1, SCW: make([][16]byte, bits-1), TCW: make([]byte, bits-1)}
	var t0, t1 byte = 0, 1
	depth := bits - 1
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
	c0, c1 := convert(&s0), convert(&s1)
	var fin [2]uint64
	for j := 0; j < 2; j++ {
		v := c1[j] - c0[j]
		if uint64(j) == alpha&1 {
			v += beta
		}
		if t1 == 1 {
			v = -v
		}
		fin[j] = v
	}
	k0.Final, k1.Final = fin, fin
	return k0, k1, nil
}

// leaf returns party b's two outputs for a leaf seed and control bit.
func (k *Key) leaf(s *[16]byte, t byte) [2]uint64 {
	c := convert(s)
	if t == 1 {
		c[0] += k.Final[0]
		c[1] += k.Final[1]
	}
	if k.Party == 1 {
		c[0], c[1] = -c[0], -c[1]
	}
	return c
}

// Eval returns this party's share of f(x).
func (k *Key) Eval(x uint64) uint64 {
	s := k.Seed
	t := k.Party
	for i := 0; i < k.Bits-1; i++ {
		var l, r [16]byte
		tl, tr := expand(&s, &l, &r)
		if t == 1 {
			xor16(&l, &k.SCW[i])
			xor16(&r, &k.SCW[i])
			tl ^= k.TCW[i] & 1
			tr ^= k.TCW[i] >> 1
		}
		if (x>>uint(k.Bits-1-i))&1 == 0 {
			s, t = l, tl
		} else {
			s, t = r, tr
		}
	}
	return k.leaf(&s, t)[x&1]
}

// EvalAll writes this party's shares of f(0..len(out)-1) to out, where
// len(out) <= 2^Bits. It expands the tree breadth first over flat buffers
// of seeds held as pairs of little-endian words, one batch of AES calls per
// level and child side (aes.go), with no per-node allocation.
func (k *Key) EvalAll(out []uint64) error {
	n := 1 << uint(k.Bits)
	if len(out) > n {
		return fmt.Errorf("dpf: output length %d exceeds domain %d", len(out), n)
	}
	if len(out) == 0 {
		return nil
	}
	leaves := (len(out) + 1) / 2
	sc := getScratch(leaves)
	defer scratchPool.Put(sc)
	cur, next := sc.a[:2*leaves], sc.b[:2*leaves]
	curT, nextT := sc.at[:leaves], sc.bt[:leaves]
	cur[0] = binary.LittleEndian.Uint64(k.Seed[:8])
	cur[1] = binary.LittleEndian.Uint64(k.Seed[8:])
	curT[0] = k.Party
	for i := 0; i < k.Bits-1; i++ {
		shift := uint(k.Bits - 2 - i)
		need := (leaves-1)>>shift + 1
		scw0 := binary.LittleEndian.Uint64(k.SCW[i][:8])
		scw1 := binary.LittleEndian.Uint64(k.SCW[i][8:])
		tl, tr := k.TCW[i]&1, k.TCW[i]>>1
		// Parent j's children land at words 4j..4j+3 (left, then right);
		// when need is odd the last parent has only its left child.
		pairs := need / 2
		if asmExpand != nil && pairs > 0 {
			cw := levelCW{scw: [2]uint64{scw0, scw1}, tl: uint64(tl), tr: uint64(tr)}
			_, _, _, _ = cur[2*pairs-1], curT[pairs-1], next[4*pairs-1], nextT[2*pairs-1]
			asmExpand(fixed.l.rk, fixed.r.rk, &cur[0], &curT[0], &next[0], &nextT[0], pairs, &cw)
		} else {
			fixed.l.mmoBatch(next, cur, pairs, 4)
			fixed.r.mmoBatch(next[2:], cur, pairs, 4)
			for j, t := range curT[:pairs] {
				m := -uint64(t)
				q := next[4*j : 4*j+4 : 4*j+4]
				l0, r0 := q[0], q[2]
				q[0] = (l0 ^ scw0&m) &^ 1
				q[1] ^= scw1 & m
				q[2] = (r0 ^ scw0&m) &^ 1
				q[3] ^= scw1 & m
				nextT[2*j] = byte(l0&1) ^ t&tl
				nextT[2*j+1] = byte(r0&1) ^ t&tr
			}
		}
		if need&1 == 1 {
			fixed.l.mmoBatch(next[4*pairs:], cur[2*pairs:], 1, 4)
			t := curT[pairs]
			m := -uint64(t)
			l0 := next[4*pairs]
			next[4*pairs] = (l0 ^ scw0&m) &^ 1
			next[4*pairs+1] ^= scw1 & m
			nextT[2*pairs] = byte(l0&1) ^ t&tl
		}
		cur, next = next, cur
		curT, nextT = nextT, curT
	}
	fixed.c.mmoBatch(next, cur, leaves, 2)
	f0, f1 := k.Final[0], k.Final[1]
	neg := k.Party == 1
	full := len(out) / 2
	for j, t := range curT[:full] {
		m := -uint64(t)
		c0 := next[2*j] + f0&m
		c1 := next[2*j+1] + f1&m
		if neg {
			c0, c1 = -c0, -c1
		}
		o := out[2*j : 2*j+2 : 2*j+2]
		o[0], o[1] = c0, c1
	}
	if len(out)&1 == 1 { // the last leaf's second output is outside out
		c0 := next[2*full] + f0&-uint64(curT[full])
		if neg {
			c0 = -c0
		}
		out[2*full] = c0
	}
	return nil
}

// levelCW is one level's correction words in the form expandPairs reads:
// the seed correction as two little-endian words, then the left and right
// control-bit corrections (0 or 1).
type levelCW struct {
	scw    [2]uint64
	tl, tr uint64
}

// scratch holds EvalAll's level buffers, reused across calls.
type scratch struct {
	a, b   []uint64
	at, bt []byte
}

var scratchPool sync.Pool

func getScratch(leaves int) *scratch {
	sc, _ := scratchPool.Get().(*scratch)
	if sc == nil {
		sc = new(scratch)
	}
	if cap(sc.a) < 2*leaves {
		sc.a, sc.b = make([]uint64, 2*leaves), make([]uint64, 2*leaves)
		sc.at, sc.bt = make([]byte, leaves), make([]byte, leaves)
	}
	return sc
}

// MarshalBinary encodes the key (package doc).
func (k *Key) MarshalBinary() ([]byte, error) {
	return k.AppendBinary(nil)
}

// AppendBinary appends the encoding of k to b.
func (k *Key) AppendBinary(b []byte) ([]byte, error) {
	if k.Bits < 1 || k.Bits > MaxBits || len(k.SCW) != k.Bits-1 || len(k.TCW) != k.Bits-1 || k.Party > 1 {
		return nil, fmt.Errorf("%w: inconsistent key", ErrKey)
	}
	b = append(b, Version, byte(k.Bits), k.Party)
	b = append(b, k.Seed[:]...)
	for i := range k.SCW {
		b = append(b, k.SCW[i][:]...)
		b = append(b, k.TCW[i])
	}
	b = binary.BigEndian.AppendUint64(b, k.Final[0])
	b = binary.BigEndian.AppendUint64(b, k.Final[1])
	return b, nil
}

// Decode parses one key from the front of b and returns the rest.
func Decode(b []byte) (Key, []byte, error) {
	if len(b) < 3 {
		return Key{}, nil, fmt.Errorf("%w: short header", ErrKey)
	}
	if b[0] != Version {
		return Key{}, nil, fmt.Errorf("%w: version %d", ErrKey, b[0])
	}
	bits := int(b[1])
	if bits < 1 || bits > MaxBits {
		return Key{}, nil, fmt.Errorf("%w: domain bits %d", ErrKey, bits)
	}
	if b[2] > 1 {
		return Key{}, nil, fmt.Errorf("%w: party %d", ErrKey, b[2])
	}
	size := KeySize(bits)
	if len(b) < size {
		return Key{}, nil, fmt.Errorf("%w: %d bytes, want %d", ErrKey, len(b), size)
	}
	k := Key{Bits: bits, Party: b[2], SCW: make([][16]byte, bits-1), TCW: make([]byte, bits-1)}
	p := b[3:]
	copy(k.Seed[:], p[:16])
	p = p[16:]
	for i := 0; i < bits-1; i++ {
		copy(k.SCW[i][:], p[:16])
		if p[16]&^3 != 0 {
			return Key{}, nil, fmt.Errorf("%w: reserved control bits set", ErrKey)
		}
		k.TCW[i] = p[16]
		p = p[17:]
	}
	k.Final[0] = binary.BigEndian.Uint64(p[:8])
	k.Final[1] = binary.BigEndian.Uint64(p[8:16])
	return k, b[size:], nil
}

// BitsFor returns the smallest n >= 1 with 2^n >= size.
func BitsFor(size int) int {
	n := 1
	for 1<<uint(n) < size {
		n++
	}
	return n
}
