// Package dpf implements a two-party distributed point function (DPF) in the
// tree construction of Boyle, Gilboa and Ishai (CCS 2016), with three levels
// of early termination (a leaf yields eight outputs), an AES-128 based
// length-doubling PRG and outputs in the ring Z_2^64.
//
// A key pair (k0, k1) generated for the point function f_{alpha,beta} over the
// domain [0, 2^n) satisfies Eval(k0, x) + Eval(k1, x) = beta if x == alpha and
// 0 otherwise (mod 2^64). Each key alone is pseudorandom and reveals nothing
// about alpha or beta. EvalAll expands the whole domain level by level in
// O(2^n) PRG calls.
//
// Wire format of a key (spec/05-mpc.md §3.3), all integers big-endian:
//
//	version  u8   = 2
//	bits     u8   = n, 1 <= n <= MaxBits
//	party    u8   = 0 or 1
//	seed     [16]
//	n-l times:   sCW [16], tCW u8 (bit 0 = left, bit 1 = right, other bits 0)
//	final CW 2^l times u64 (output correction for the outputs of a leaf)
//
// with l = min(n, 3), so a key is 19 + 17*(n-l) + 8*2^l bytes (KeySize).
// Comparison keys (dcf.go, version 3) and vector keys (vec.go, version 4:
// one tree, a payload of several ring elements) share the tree and PRG.
//
// The PRG runs on AES-NI and VAES assembly where the CPU has them
// (mmo_amd64.go); on other architectures, or on amd64 with the purego build
// tag, the portable Go paths run, with the same outputs bit for bit.
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

// Version is the key encoding version. Version 1 ended the tree one level
// above the outputs (two outputs per leaf).
const Version = 2

// leafBits is the number of levels a leaf covers: each leaf seed yields
// 2^leafBits outputs from 2^(leafBits-1) AES blocks, which halves the AES
// work of a full-domain evaluation against a tree that ends one level
// above the outputs.
const leafBits = 3

// leafLevels returns l = min(bits, leafBits): a key over 2^bits has a tree
// of depth bits - l whose leaves yield 2^l outputs each.
func leafLevels(bits int) int { return min(bits, leafBits) }

// MaxBits bounds the domain so that EvalAll of a key read from the network
// allocates at most 2^MaxBits outputs.
const MaxBits = 24

// ErrKey reports a malformed key encoding.
var ErrKey = errors.New("dpf: malformed key")

// KeySize returns the encoded size in bytes of a key over a 2^bits domain.
func KeySize(bits int) int {
	l := leafLevels(bits)
	return 19 + 17*(bits-l) + 8<<uint(l)
}

// Key is one party's share of a point function.
//
// A comparison key (Cmp, dcf.go) has Bits-l levels of SCW and TCW and their
// value corrections VCW, l = min(Bits, 2), and 2^l Final words.
type Key struct {
	Bits  int // domain is [0, 2^Bits)
	Party byte
	Seed  [16]byte
	SCW   [][16]byte // len Bits-l (l = min(Bits, 3))
	TCW   []byte     // len Bits-l, bit 0 left, bit 1 right
	Final []uint64   // len 2^l (vector key: Elems*2^l, element-major): the output correction of a leaf's outputs
	Cmp   bool       // a comparison key (x < alpha), not a point function
	Elems int        // a vector key (vec.go): its payload's elements; 0 for a point key
	VCW   []uint64   // comparison keys: the value correction of each level
}

// prg holds the fixed-key AES ciphers (spec §3.2). The keys are public
// constants: SHA-256 of the label, first 16 bytes.
type prg struct{ l, r, c mmoKey }

var fixed = newPRG()

func newPRG() prg {
	return prg{l: newMMOKey("unfed/mpc/dpf/prg/left"), r: newMMOKey("unfed/mpc/dpf/prg/right"), c: newMMOKey("unfed/mpc/dpf/convert")}
}

// newMMOKey returns the fixed PRG key of label: SHA-256 of the label, first
// 16 bytes.
func newMMOKey(label string) mmoKey {
	h := sha256.Sum256([]byte(label))
	b, err := aes.NewCipher(h[:16])
	if err != nil {
		panic(err) // unreachable: 16-byte key
	}
	return mmoKey{rk: expandKey128(h[:16]), blk: b}
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

// convert maps a leaf seed to n ring elements (n even or 1): block i
// (i < ceil(n/2)) is G_C(s xor i), i in byte 15, giving outputs 2i and 2i+1
// as its two little-endian halves.
func convert(s *[16]byte, out []uint64) {
	var in, o [16]byte
	for i := 0; 2*i < len(out); i++ {
		in = *s
		in[15] ^= byte(i)
		mmo(&fixed.c, &o, &in)
		out[2*i] = binary.LittleEndian.Uint64(o[:8])
		if 2*i+1 < len(out) {
			out[2*i+1] = binary.LittleEndian.Uint64(o[8:])
		}
	}
}

func xor16(a *[16]byte, b *[16]byte) {
	for i := range a {
		a[i] ^= b[i]
	}
}

// Gen returns the two keys of the point function alpha -> beta over [0, 2^bits).
// rand supplies the two root seeds (32 bytes).
func Gen(alpha uint64, beta uint64, bits int, rand io.Reader) (Key, Key, error) {
	return decodePair(AppendGen(nil, nil, alpha, beta, bits, rand))
}

// AppendGen generates the key pair of Gen and appends party 0's encoding
// to dst0 and party 1's to dst1. It reads the same 32 bytes from rand as
// Gen and gives the same keys, without building Key values: a dealer
// makes thousands of keys per step and only sends them.
func AppendGen(dst0, dst1 []byte, alpha uint64, beta uint64, bits int, rand io.Reader) ([]byte, []byte, error) {
	var root [32]byte
	if err := genCheck(alpha, bits, &root, rand); err != nil {
		return dst0, dst1, err
	}
	size := KeySize(bits)
	dst0, dst1 = grow(dst0, size), grow(dst1, size)
	dst0 = append(dst0, Version, byte(bits), 0)
	dst1 = append(dst1, Version, byte(bits), 1)
	dst0, dst1, s, t1 := appendTree(dst0, dst1, alpha, bits, &root)
	dst0, dst1 = appendFinal(dst0, dst1, &s, t1, alpha, beta, bits, 0)
	return dst0, dst1, nil
}

// genCheck checks a point function's domain and point and reads the two
// root seeds (32 bytes of rand) into root, control bits cleared.
func genCheck(alpha uint64, bits int, root *[32]byte, rand io.Reader) error {
	if bits < 1 || bits > MaxBits {
		return fmt.Errorf("dpf: domain bits %d out of range [1,%d]", bits, MaxBits)
	}
	if alpha>>uint(bits) != 0 {
		return fmt.Errorf("dpf: alpha %d outside domain 2^%d", alpha, bits)
	}
	if _, err := io.ReadFull(rand, root[:]); err != nil {
		return fmt.Errorf("dpf: seed: %w", err)
	}
	root[0] &^= 1
	root[16] &^= 1
	return nil
}

// appendTree appends the root seeds and the tree's correction words of
// the point alpha over 2^bits (the header is the caller's) and returns
// the two leaf seeds on alpha's path (party 0's, then party 1's, as
// little-endian words) and party 1's control bit there.
func appendTree(dst0, dst1 []byte, alpha uint64, bits int, root *[32]byte) ([]byte, []byte, [4]uint64, uint64) {
	dst0 = append(dst0, root[:16]...)
	dst1 = append(dst1, root[16:]...)
	depth := bits - leafLevels(bits)
	// s holds the two current seeds (party 0's, then party 1's) as the
	// little-endian words mmoBatch takes; byte 0 of a seed is the low byte
	// of its first word, so the control bit is bit 0 of that word.
	var s, l, r [4]uint64
	for i := range s {
		s[i] = binary.LittleEndian.Uint64(root[8*i:])
	}
	var t0, t1 uint64 = 0, 1
	for i := 0; i < depth; i++ {
		bit := alpha >> uint(bits-1-i) & 1
		fixed.l.mmoBatch(l[:], s[:], 2, 2)
		fixed.r.mmoBatch(r[:], s[:], 2, 2)
		tl0, tr0, tl1, tr1 := l[0]&1, r[0]&1, l[2]&1, r[2]&1
		l[0] &^= 1
		l[2] &^= 1
		r[0] &^= 1
		r[2] &^= 1
		// keep the child on alpha's path, correct the other
		keep, lose := &l, &r
		tk0, tk1 := tl0, tl1
		if bit == 1 {
			keep, lose = &r, &l
			tk0, tk1 = tr0, tr1
		}
		cw := [2]uint64{lose[0] ^ lose[2], lose[1] ^ lose[3]}
		tlcw, trcw, tcwKeep := controlCW(tl0, tl1, tr0, tr1, bit)
		var enc [17]byte
		putCW(enc[:], cw, tlcw, trcw)
		dst0 = append(dst0, enc[:]...)
		dst1 = append(dst1, enc[:]...)
		s = *keep
		s[0] ^= cw[0] & -t0
		s[1] ^= cw[1] & -t0
		s[2] ^= cw[0] & -t1
		s[3] ^= cw[1] & -t1
		t0, t1 = tk0^(t0&tcwKeep), tk1^(t1&tcwKeep)
	}
	return dst0, dst1, s, t1
}

// appendFinal appends the output correction of a leaf's 2^l outputs for
// the payload beta at alpha, given the leaf seeds s and party 1's control
// bit t1 from appendTree; the conversion blocks are G_C(s xor (tweak + i)),
// tweak + i in byte 15 (tweak = e * 2^(l-1) for element e of a vector key,
// 0 for a point key).
func appendFinal(dst0, dst1 []byte, s *[4]uint64, t1, alpha, beta uint64, bits int, tweak uint64) ([]byte, []byte) {
	// convert both leaf seeds (spec §3.2): block i is G_C(s xor i), i in
	// byte 15, the high byte of the second word
	n := 1 << uint(leafLevels(bits))
	blocks := (n + 1) / 2
	var in, out [2 * 2 * (1 << leafBits) / 2]uint64
	for p := 0; p < 2; p++ {
		for i := 0; i < blocks; i++ {
			in[2*(p*blocks+i)] = s[2*p]
			in[2*(p*blocks+i)+1] = s[2*p+1] ^ (tweak+uint64(i))<<56
		}
	}
	fixed.c.mmoBatch(out[:], in[:], 2*blocks, 2)
	for j := 0; j < n; j++ {
		v := out[2*blocks+j] - out[j]
		if uint64(j) == alpha&uint64(n-1) {
			v += beta
		}
		if t1 == 1 {
			v = -v
		}
		dst0 = binary.BigEndian.AppendUint64(dst0, v)
		dst1 = binary.BigEndian.AppendUint64(dst1, v)
	}
	return dst0, dst1
}

// grow makes room for n more bytes in b.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	return append(b, make([]byte, n)...)[:len(b)]
}

// Eval returns this party's share of f(x) (of its first element for a
// vector key).
func (k *Key) Eval(x uint64) uint64 {
	if k.Cmp {
		return k.evalLess(x)
	}
	s, t := k.walk(x)
	c := make([]uint64, len(k.Final))
	if k.Elems != 0 {
		c = c[:len(c)/k.Elems] // element 0
	}
	convert(&s, c)
	j := x & uint64(len(c)-1)
	v := c[j] + k.Final[j]*uint64(t)
	if k.Party == 1 {
		v = -v
	}
	return v
}

// walk returns the leaf seed and control bit on x's path.
func (k *Key) walk(x uint64) ([16]byte, byte) {
	s := k.Seed
	t := k.Party
	for i := range k.SCW {
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
	return s, t
}

// EvalAll writes this party's shares of f(0..len(out)-1) to out, where
// len(out) <= 2^Bits. It expands the tree breadth first over flat buffers
// of seeds held as pairs of little-endian words, one batch of AES calls per
// level and child side (aes.go), with no per-node allocation.
func (k *Key) EvalAll(out []uint64) error {
	if k.Cmp {
		return fmt.Errorf("dpf: full-domain evaluation of a comparison key")
	}
	if k.Elems != 0 {
		return fmt.Errorf("dpf: EvalAll of a vector key (EvalAllVec)")
	}
	n := 1 << uint(k.Bits)
	if len(out) > n {
		return fmt.Errorf("dpf: output length %d exceeds domain %d", len(out), n)
	}
	if len(out) == 0 {
		return nil
	}
	L := len(k.Final) // outputs per leaf, 2^l
	leaves := (len(out) + L - 1) / L
	sc := getScratch(leaves, L)
	defer scratchPool.Put(sc)
	cur, curT, next := k.expandTree(sc, leaves)
	leafOutputs(cur, curT, next, k.Final, k.Party, out)
	return nil
}

// expandTree expands k's tree down to its first leaves leaf seeds and
// returns them (two words each) with their control bits, and the other
// level buffer (L words per leaf, free for the leaf conversion).
func (k *Key) expandTree(sc *scratch, leaves int) (cur []uint64, curT []byte, next []uint64) {
	depth := len(k.SCW)
	cur, next = sc.a[:2*leaves], sc.b[:2*leaves]
	curT, nextT := sc.at[:leaves], sc.bt[:leaves]
	cur[0] = binary.LittleEndian.Uint64(k.Seed[:8])
	cur[1] = binary.LittleEndian.Uint64(k.Seed[8:])
	curT[0] = k.Party
	for i := 0; i < depth; i++ {
		shift := uint(depth - 1 - i)
		need := (leaves-1)>>shift + 1
		scw0 := binary.LittleEndian.Uint64(k.SCW[i][:8])
		scw1 := binary.LittleEndian.Uint64(k.SCW[i][8:])
		tl, tr := k.TCW[i]&1, k.TCW[i]>>1
		// Parent j's children land at words 4j..4j+3 (left, then right);
		// when need is odd the last parent has only its left child.
		pairs := need / 2
		cw := levelCW{scw: [2]uint64{scw0, scw1}, tl: uint64(tl), tr: uint64(tr)}
		if !expandAsm(cur, curT, next, nextT, pairs, &cw) {
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
	return cur, curT, next[:cap(next)]
}

// leafOutputs converts the leaf seeds cur (control bits curT) into the
// outputs of a key with the given final correction words (2^l per leaf)
// and party: out = (G_C + t * final) * (party 1 ? -1 : 1). It may
// overwrite cur (which holds L words per leaf) and tw, L words per leaf.
func leafOutputs(cur []uint64, curT []byte, tw []uint64, final []uint64, party byte, out []uint64) {
	L := len(final)
	leaves := (len(out) + L - 1) / L
	// Leaf j's outputs jL..jL+L-1 are the halves of the blocks
	// G_C(s_j xor b), b < L/2 (b in byte 15, the top byte of word 1). The
	// tweaked blocks go to the other level buffer, the converted blocks over
	// the seeds once they are read (both hold L*leaves words).
	// sign is -1 for party 1; neg is its mask for the assembly
	neg := -uint64(party)
	sign := neg | 1
	from := 0 // the first leaf left to convert
	if L == 8 && len(out) >= 8 && leavesAsm(out, cur, curT, final, neg, len(out)/8) {
		from = len(out) / 8
	}
	if from == leaves {
		return
	}
	cur, curT, leaves = cur[2*from:], curT[from:], leaves-from
	out = out[from*L:]
	half := L / 2
	tw = tw[:L*leaves]
	if L == 8 {
		for j := 0; j < leaves; j++ {
			s0, s1 := cur[2*j], cur[2*j+1]
			q := (*[8]uint64)(tw[8*j:])
			q[0], q[1], q[2], q[3] = s0, s1, s0, s1^1<<56
			q[4], q[5], q[6], q[7] = s0, s1^2<<56, s0, s1^3<<56
		}
	} else {
		for j := 0; j < leaves; j++ {
			for b := 0; b < half; b++ {
				tw[2*(j*half+b)] = cur[2*j]
				tw[2*(j*half+b)+1] = cur[2*j+1] ^ uint64(b)<<56
			}
		}
	}
	conv := cur[: L*leaves : L*leaves]
	fixed.c.mmoBatch(conv, tw, leaves*half, 2)
	// out = (conv + t * Final) * (party 1 ? -1 : 1), leaf by leaf.
	j := 0
	if L == 8 {
		f := (*[8]uint64)(final)
		for ; j < len(out)/8; j++ {
			m := -uint64(curT[j])
			c := (*[8]uint64)(conv[8*j:])
			o := (*[8]uint64)(out[8*j:])
			o[0], o[1], o[2], o[3] = (c[0]+f[0]&m)*sign, (c[1]+f[1]&m)*sign, (c[2]+f[2]&m)*sign, (c[3]+f[3]&m)*sign
			o[4], o[5], o[6], o[7] = (c[4]+f[4]&m)*sign, (c[5]+f[5]&m)*sign, (c[6]+f[6]&m)*sign, (c[7]+f[7]&m)*sign
		}
	}
	for ; j < leaves; j++ {
		m := -uint64(curT[j])
		o := out[j*L : min((j+1)*L, len(out))]
		for b := range o {
			o[b] = (conv[j*L+b] + final[b]&m) * sign
		}
	}
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
	c      []uint64 // EvalAllVec: a tweaked copy of the leaf seeds
	at, bt []byte
}

var scratchPool sync.Pool

// getScratch returns buffers for a tree with the given leaves of L
// outputs: the level buffers hold two words per node, and the leaf
// conversion L words per leaf (L >= 2).
func getScratch(leaves, L int) *scratch {
	sc, _ := scratchPool.Get().(*scratch)
	if sc == nil {
		sc = new(scratch)
	}
	if n := L * leaves; cap(sc.a) < n || cap(sc.at) < leaves {
		sc.a, sc.b = make([]uint64, n), make([]uint64, n)
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
	if k.Cmp {
		return k.appendCmp(b)
	}
	if k.Elems != 0 {
		return k.appendVec(b)
	}
	if k.Bits < 1 || k.Bits > MaxBits || k.Party > 1 {
		return nil, fmt.Errorf("%w: inconsistent key", ErrKey)
	}
	if l := leafLevels(k.Bits); len(k.SCW) != k.Bits-l || len(k.TCW) != k.Bits-l || len(k.Final) != 1<<uint(l) {
		return nil, fmt.Errorf("%w: inconsistent key", ErrKey)
	}
	b = append(b, Version, byte(k.Bits), k.Party)
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

// Decode parses one key from the front of b and returns the rest.
func Decode(b []byte) (Key, []byte, error) {
	bits, size, err := header(b)
	if err != nil {
		return Key{}, nil, err
	}
	var k Key
	d, f := shape(b, bits)
	switch b[0] {
	case CmpVersion:
		err = fillCmp(&k, b[:size], make([][16]byte, d), make([]byte, d), make([]uint64, d), make([]uint64, f))
	case VecVersion:
		err = fillVec(&k, b[:size], make([][16]byte, d), make([]byte, d), make([]uint64, f))
	default:
		err = fill(&k, b[:size], 3, make([][16]byte, d), make([]byte, d), make([]uint64, f))
	}
	if err != nil {
		return Key{}, nil, err
	}
	return k, b[size:], nil
}

// DecodeAll parses the keys concatenated in b, all of it. The keys share
// three allocations instead of taking three each: a PREP carries thousands.
func DecodeAll(b []byte) ([]Key, error) {
	var n, levels, finals, values int
	for rest := b; len(rest) > 0; n++ {
		bits, size, err := header(rest)
		if err != nil {
			return nil, err
		}
		d, f := shape(rest, bits)
		levels += d
		finals += f
		if rest[0] == CmpVersion {
			values += d
		}
		rest = rest[size:]
	}
	keys := make([]Key, n)
	scw, tcw, fin := make([][16]byte, levels), make([]byte, levels), make([]uint64, finals)
	vcw := make([]uint64, values)
	for i := range keys {
		bits, size, _ := header(b) // checked above
		d, f := shape(b, bits)
		var err error
		switch b[0] {
		case CmpVersion:
			err = fillCmp(&keys[i], b[:size], scw[:d:d], tcw[:d:d], vcw[:d:d], fin[:f:f])
			vcw = vcw[d:]
		case VecVersion:
			err = fillVec(&keys[i], b[:size], scw[:d:d], tcw[:d:d], fin[:f:f])
		default:
			err = fill(&keys[i], b[:size], 3, scw[:d:d], tcw[:d:d], fin[:f:f])
		}
		if err != nil {
			return nil, err
		}
		b, scw, tcw, fin = b[size:], scw[d:], tcw[d:], fin[f:]
	}
	return keys, nil
}

// DecodeAllParts is DecodeAll for keys whose encoding arrived cut into
// pieces (parts, in order; their concatenation is what DecodeAll would
// take): each key is read where it lies, and only a key that straddles two
// pieces is copied, so a caller need not join a message of megabytes first.
func DecodeAllParts(parts [][]byte) ([]Key, error) {
	if len(parts) == 1 {
		return DecodeAll(parts[0])
	}
	var levels, finals, values int
	var kbs [][]byte // every key's bytes
	var peek [4]byte
	for c := NewCursor(parts); c.Len() > 0; {
		_, size, err := keyHeader(c.Peek(peek[:0], len(peek)))
		if err != nil {
			return nil, err
		}
		kb := c.Take(size)
		if kb == nil {
			return nil, fmt.Errorf("%w: key truncated", ErrKey)
		}
		bits, _, _ := header(kb) // checked above, and kb holds size bytes
		d, f := shape(kb, bits)
		levels += d
		finals += f
		if kb[0] == CmpVersion {
			values += d
		}
		kbs = append(kbs, kb)
	}
	keys := make([]Key, len(kbs))
	scw, tcw, fin := make([][16]byte, levels), make([]byte, levels), make([]uint64, finals)
	vcw := make([]uint64, values)
	for i, b := range kbs {
		bits, _, _ := header(b)
		d, f := shape(b, bits)
		var err error
		switch b[0] {
		case CmpVersion:
			err = fillCmp(&keys[i], b, scw[:d:d], tcw[:d:d], vcw[:d:d], fin[:f:f])
			vcw = vcw[d:]
		case VecVersion:
			err = fillVec(&keys[i], b, scw[:d:d], tcw[:d:d], fin[:f:f])
		default:
			err = fill(&keys[i], b, 3, scw[:d:d], tcw[:d:d], fin[:f:f])
		}
		if err != nil {
			return nil, err
		}
		scw, tcw, fin = scw[d:], tcw[d:], fin[f:]
	}
	return keys, nil
}

// Cursor reads a message that arrived cut into pieces, in order.
type Cursor struct {
	parts [][]byte // the bytes left: parts[0][off:], then the others
	off   int
	left  int
}

// NewCursor returns a cursor at the start of parts.
func NewCursor(parts [][]byte) *Cursor {
	c := &Cursor{parts: parts}
	for _, p := range parts {
		c.left += len(p)
	}
	return c
}

func (c *Cursor) skipEmpty() {
	for len(c.parts) > 0 && c.off >= len(c.parts[0]) {
		c.parts, c.off = c.parts[1:], 0
	}
}

// Len returns the number of bytes left.
func (c *Cursor) Len() int { return c.left }

// Peek appends to dst up to n of the next bytes, without taking them.
func (c *Cursor) Peek(dst []byte, n int) []byte {
	off := c.off
	for _, p := range c.parts {
		if len(dst) >= n {
			break
		}
		q := p[min(off, len(p)):]
		off = 0
		dst = append(dst, q[:min(len(q), n-len(dst))]...)
	}
	return dst
}

// Take returns the next n bytes and moves past them: a slice of a part
// where they lie in one, else a copy; nil if fewer than n are left.
func (c *Cursor) Take(n int) []byte {
	if n < 0 || n > c.left {
		return nil
	}
	c.skipEmpty()
	c.left -= n
	if len(c.parts) > 0 && len(c.parts[0])-c.off >= n {
		b := c.parts[0][c.off : c.off+n : c.off+n]
		c.off += n
		return b
	}
	b := make([]byte, 0, n)
	for len(b) < n {
		c.skipEmpty()
		q := c.parts[0][c.off:]
		k := min(len(q), n-len(b))
		b = append(b, q[:k]...)
		c.off += k
	}
	return b
}

// Rest returns the bytes left as parts (the first one cut where the cursor
// is), and leaves none.
func (c *Cursor) Rest() [][]byte {
	c.skipEmpty()
	if len(c.parts) == 0 {
		return nil
	}
	rest := append([][]byte{c.parts[0][c.off:]}, c.parts[1:]...)
	c.parts, c.off, c.left = nil, 0, 0
	return rest
}

// header checks the fixed part of the key at the front of b and returns its
// domain bits and encoded size, which b holds.
func header(b []byte) (bits, size int, err error) {
	if bits, size, err = keyHeader(b); err != nil {
		return 0, 0, err
	}
	if len(b) < size {
		return 0, 0, fmt.Errorf("%w: %d bytes, want %d", ErrKey, len(b), size)
	}
	return bits, size, nil
}

// keyHeader is header without checking that b holds the whole key: b need
// hold only the fixed part (3 bytes, 4 for a vector key).
func keyHeader(b []byte) (bits, size int, err error) {
	if len(b) < 3 {
		return 0, 0, fmt.Errorf("%w: short header", ErrKey)
	}
	if b[0] != Version && b[0] != CmpVersion && b[0] != VecVersion {
		return 0, 0, fmt.Errorf("%w: version %d", ErrKey, b[0])
	}
	bits, limit := int(b[1]), MaxBits
	if b[0] == CmpVersion {
		limit = MaxCmpBits
	}
	if bits < 1 || bits > limit {
		return 0, 0, fmt.Errorf("%w: domain bits %d", ErrKey, bits)
	}
	if b[2] > 1 {
		return 0, 0, fmt.Errorf("%w: party %d", ErrKey, b[2])
	}
	switch b[0] {
	case CmpVersion:
		size = CmpKeySize(bits)
	case VecVersion:
		if len(b) < 4 {
			return 0, 0, fmt.Errorf("%w: short header", ErrKey)
		}
		if b[3] < 2 || b[3] > MaxElems {
			return 0, 0, fmt.Errorf("%w: vector of %d elements", ErrKey, b[3])
		}
		size = VecKeySize(bits, int(b[3]))
	default:
		size = KeySize(bits)
	}
	return bits, size, nil
}

// shape returns the number of tree levels with correction words and of
// final words of the key whose header (checked) is at the front of b.
func shape(b []byte, bits int) (levels, finals int) {
	switch b[0] {
	case CmpVersion:
		l := cmpLeafLevels(bits)
		return bits - l, 1 << uint(l)
	case VecVersion:
		l := leafLevels(bits)
		return bits - l, int(b[3]) << uint(l)
	}
	l := leafLevels(bits)
	return bits - l, 1 << uint(l)
}

// fill decodes the key encoded in b (header checked, hdr bytes long) into
// k, with the correction words in the given slices of the right lengths.
func fill(k *Key, b []byte, hdr int, scw [][16]byte, tcw []byte, fin []uint64) error {
	*k = Key{Bits: int(b[1]), Party: b[2], SCW: scw, TCW: tcw, Final: fin}
	p := b[hdr:]
	copy(k.Seed[:], p[:16])
	p = p[16:]
	for i := range k.SCW {
		copy(k.SCW[i][:], p[:16])
		if p[16]&^3 != 0 {
			return fmt.Errorf("%w: reserved control bits set", ErrKey)
		}
		k.TCW[i] = p[16]
		p = p[17:]
	}
	for i := range k.Final {
		k.Final[i] = binary.BigEndian.Uint64(p[8*i:])
	}
	return nil
}

// BitsFor returns the smallest n >= 1 with 2^n >= size.
func BitsFor(size int) int {
	n := 1
	for 1<<uint(n) < size {
		n++
	}
	return n
}

// controlCW returns a level's control-bit correction words (left, right)
// and the one of the child on the special point's path (bit: its branch).
func controlCW(tl0, tl1, tr0, tr1, bit uint64) (tlcw, trcw, keep uint64) {
	tlcw, trcw = tl0^tl1^bit^1, tr0^tr1^bit
	if bit == 1 {
		return tlcw, trcw, trcw
	}
	return tlcw, trcw, tlcw
}

// putCW writes a level's seed and control-bit correction words, the first
// 17 bytes of its encoding.
func putCW(enc []byte, cw [2]uint64, tlcw, trcw uint64) {
	binary.LittleEndian.PutUint64(enc[:8], cw[0])
	binary.LittleEndian.PutUint64(enc[8:16], cw[1])
	enc[16] = byte(tlcw | trcw<<1)
}

// decodePair decodes the two encoded keys of an AppendGen* call.
func decodePair(a, b []byte, err error) (Key, Key, error) {
	if err != nil {
		return Key{}, Key{}, err
	}
	k0, _, err := Decode(a)
	if err != nil {
		return Key{}, Key{}, err
	}
	k1, _, err := Decode(b)
	return k0, k1, err
}
