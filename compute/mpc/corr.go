package mpc

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"io"
	"unsafe"

	"github.com/unfed/unfed/compute/mpc/dpf"
)

// Correlated randomness (spec §5.2). Every correlated value the dealer hands
// out is additively shared: party A's share of the k-th value is the k-th
// 8-byte little-endian word of AES-128-CTR keyed by the per-step seed in A's
// message (zero IV), and party B's share is the k-th explicit value in B's
// message. Both parties and the dealer consume the stream in the order the
// circuit (party.go) defines, so nothing but the count is sent for A.

// source yields one party's shares of the next n correlated values.
type source interface {
	next(n int) ([]uint64, error)
	// next32 yields shares of n values dealt mod 2^32 (dealing.share32):
	// only their low 32 bits are meaningful.
	next32(n int) ([]uint64, error)
	// done reports an error if values were left unread.
	done() error
}

type prgSource struct{ s cipher.Stream }

func newPRGSource(seed []byte) *prgSource {
	b, err := aes.NewCipher(seed[:16])
	if err != nil {
		panic(err) // unreachable: 16-byte key
	}
	return &prgSource{s: cipher.NewCTR(b, make([]byte, 16))}
}

func (p *prgSource) next(n int) ([]uint64, error) {
	out := make([]uint64, n)
	p.fillZeroed(out)
	return out, nil
}

// fill overwrites out with the next len(out) words (the values next would
// return), for a caller that reuses its buffer.
func (p *prgSource) fill(out []uint64) {
	clear(out)
	p.fillZeroed(out)
}

// fillZeroed is fill for out already zero.
func (p *prgSource) fillZeroed(out []uint64) {
	if len(out) > 0 {
		// The key stream XORed into the zeroed words themselves: on a
		// little-endian machine word i is then bytes 8i..8i+7 read
		// little-endian, with no byte buffer to allocate and convert.
		p.s.XORKeyStream(wordBytes(out), wordBytes(out))
		fromLittleEndian(out)
	}
}

// wordBytes is the memory of w as bytes (w's words in the machine's byte
// order).
func wordBytes(w []uint64) []byte {
	if len(w) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 8*len(w))
}

// littleEndian reports whether the machine stores words little-endian.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// fromLittleEndian turns words whose bytes were written in little-endian
// order (wordBytes) into their values: nothing to do on a little-endian
// machine.
func fromLittleEndian(w []uint64) {
	if littleEndian {
		return
	}
	b := wordBytes(w)
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
}

// next32: A's share of a value dealt mod 2^32 is a whole word of its
// stream, as for any other value.
func (p *prgSource) next32(n int) ([]uint64, error) { return p.next(n) }

func (p *prgSource) done() error { return nil }

type bufSource struct{ b []byte }

func (s *bufSource) next(n int) ([]uint64, error) {
	if n < 0 || len(s.b) < 8*n {
		return nil, fmt.Errorf("%w: correlated randomness too short", ErrMalformed)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.BigEndian.Uint64(s.b[8*i:])
	}
	s.b = s.b[8*n:]
	return out, nil
}

func (s *bufSource) next32(n int) ([]uint64, error) {
	if n < 0 || len(s.b) < 4*n {
		return nil, fmt.Errorf("%w: correlated randomness too short", ErrMalformed)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(binary.BigEndian.Uint32(s.b[4*i:]))
	}
	s.b = s.b[4*n:]
	return out, nil
}

func (s *bufSource) done() error {
	if len(s.b) != 0 {
		return fmt.Errorf("%w: %d bytes of unused correlated randomness", ErrMalformed, len(s.b))
	}
	return nil
}

// keySource yields the LUT DPF keys of a step in order, with their
// full-domain evaluations where the party made them ahead (Party.Prep).
type keySource struct {
	keys []dpf.Key
	ys   [][]uint64 // ys[i] is keys[i] evaluated over its domain, or nil
	i    int
}

// next yields the next key, which must be a LUT key over 2^bits: a point
// key (elems 0) or a vector key of elems elements.
func (s *keySource) next(bits, elems int) (dpf.Key, []uint64, error) {
	if s.i >= len(s.keys) {
		return dpf.Key{}, nil, fmt.Errorf("%w: too few LUT keys", ErrMalformed)
	}
	k := s.keys[s.i]
	if k.Cmp {
		return dpf.Key{}, nil, fmt.Errorf("%w: comparison key where a LUT key is due", ErrMalformed)
	}
	if k.Elems != elems {
		return dpf.Key{}, nil, fmt.Errorf("%w: LUT key of %d payload elements (0: a point key), want %d", ErrMalformed, k.Elems, elems)
	}
	if k.Bits != bits {
		return dpf.Key{}, nil, fmt.Errorf("%w: LUT key over 2^%d, want 2^%d", ErrMalformed, k.Bits, bits)
	}
	var y []uint64
	if s.i < len(s.ys) {
		y = s.ys[s.i]
	}
	s.i++
	return k, y, nil
}

// nextCmp yields the next key, which must be a comparison key over 2^bits.
func (s *keySource) nextCmp(bits int) (dpf.Key, error) {
	if s.i >= len(s.keys) {
		return dpf.Key{}, fmt.Errorf("%w: too few comparison keys", ErrMalformed)
	}
	k := s.keys[s.i]
	if !k.Cmp || k.Bits != bits {
		return dpf.Key{}, fmt.Errorf("%w: key over 2^%d (comparison %v) where a comparison key over 2^%d is due", ErrMalformed, k.Bits, k.Cmp, bits)
	}
	s.i++
	return k, nil
}

// lut takes the next n keys as next does, one by one, and returns them
// where they lie in s (a LUT reads thousands of keys a step: copied out,
// they cost a new slice of key headers each time) with their evaluations
// made ahead (ys shorter than the keys, or an entry nil, where not made).
func (s *keySource) lut(n, bits, elems int) ([]dpf.Key, [][]uint64, error) {
	start := s.i
	for range n {
		if _, _, err := s.next(bits, elems); err != nil {
			return nil, nil, err
		}
	}
	var ys [][]uint64
	if start < len(s.ys) {
		ys = s.ys[start:min(s.i, len(s.ys)):min(s.i, len(s.ys))]
	}
	return s.keys[start:s.i:s.i], ys, nil
}

// cmp is lut for n comparison keys over 2^bits (nextCmp).
func (s *keySource) cmp(n, bits int) ([]dpf.Key, error) {
	start := s.i
	for range n {
		if _, err := s.nextCmp(bits); err != nil {
			return nil, err
		}
	}
	return s.keys[start:s.i:s.i], nil
}

func (s *keySource) done() error {
	if s.i != len(s.keys) {
		return fmt.Errorf("%w: %d unused LUT keys", ErrMalformed, len(s.keys)-s.i)
	}
	return nil
}

// dealing accumulates one step's correlated randomness on the dealer side.
type dealing struct {
	rng   io.Reader
	seedA [16]byte
	a     *prgSource
	b     []byte // B's explicit shares, big-endian
	keysA []byte
	keysB []byte
	err   error
	// msgA and msgB, when the step's sizes are known, are its PREP
	// messages: b, keysA and keysB are their bodies, filled in place, and
	// Prep writes only the headers (the messages run to megabytes).
	msgA, msgB    []byte
	shares, nkeys int // the sizes b and keysA, keysB are to reach
	// count makes a dry run that only sizes the dealing (stepSizes): no
	// randomness is drawn, nothing is encoded.
	count          bool
	nShares, nKeys int
	// uniforms counts the calls of uniform, for zeroUniform.
	uniforms int
	// keep makes shareKept record A's and B's shares in kept (a stage
	// dealer's cache masks, StageDealer.StepMasks).
	keep bool
	kept [][2][]uint64
	// scratch holds A's PRG words for share and share32 (prgScratch).
	scratch []uint64
	// pause, when set, is called between pieces of the dealing (a
	// StageDealer's SetPause), and every keysPerPause keys.
	pause func()
	keys  int // keys generated, for keyYield
}

// keysPerPause is how many DPF keys a dealing generates between pauses:
// a few microseconds each; a stories260K layer deals about a thousand for
// one token at a context of 40.
const keysPerPause = 32

// keyYield counts a key and pauses every keysPerPause of them.
func (d *dealing) keyYield() {
	if d.keys++; d.keys%keysPerPause == 0 {
		d.yield()
	}
}

// yield calls the dealing's pause, if any, between two pieces of work of
// at most a few hundred microseconds each; it changes nothing dealt.
func (d *dealing) yield() {
	if d.pause != nil && !d.count {
		d.pause()
	}
}

// zeroUniform, when set (tests only), makes the dealer's k-th call of
// uniform in a step return zeros when it reports true: a mask skipped, to
// show that the view tests catch it.
var zeroUniform func(k int) bool

// PREP message layout (spec §5.1): A's body starts after the header, its
// seed and the keys' length; B's shares after the header and their length,
// its keys after the shares and their length.
const prepBodyA = stepHeader + 16 + 4

func prepKeysB(shares int) int { return stepHeader + 4 + shares + 4 }

// newDealing starts a step's dealing of the given sizes (prepSize), or of
// sizes not known ahead when both are 0 (tests of single gates).
func newDealing(rng io.Reader, shares, keys int) (*dealing, error) {
	return newDealingInto(rng, shares, keys, [2][]byte{})
}

// newDealingInto is newDealing with the PREP messages made in spare's
// buffers where they are large enough (they are overwritten, not zeroed:
// prep checks that the bodies reach their sizes exactly, so every byte is
// written).
func newDealingInto(rng io.Reader, shares, keys int, spare [2][]byte) (*dealing, error) {
	d := &dealing{rng: rng, shares: shares, nkeys: keys}
	if shares > 0 || keys > 0 {
		d.msgA = reuse(spare[0], prepBodyA+keys)
		d.keysA = d.msgA[prepBodyA:prepBodyA]
		d.msgB = reuse(spare[1], prepKeysB(shares)+keys)
		d.b = d.msgB[stepHeader+4 : stepHeader+4]
		d.keysB = d.msgB[prepKeysB(shares):prepKeysB(shares)]
	}
	if _, err := io.ReadFull(rng, d.seedA[:]); err != nil {
		return nil, fmt.Errorf("mpc: dealer randomness: %w", err)
	}
	d.a = newPRGSource(d.seedA[:])
	return d, nil
}

// reuse returns b[:n] when b has room for n bytes, else a new buffer of n
// with an eighth to spare (a stage's PREPs grow with the context).
func reuse(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]byte, n, n+n/8)
}

// prep returns the PREP messages of a sized dealing, writing the headers
// of ma and mb around the bodies dealt in place.
func (d *dealing) prep(ma, mb *stepMsg) (msgA, msgB []byte, err error) {
	// The bodies only grow by appends, so reaching exactly the sizes
	// means no append outgrew its room and moved the body out of the
	// message.
	if d.msgA == nil || len(d.b) != d.shares || len(d.keysA) != d.nkeys || len(d.keysB) != d.nkeys {
		return nil, nil, fmt.Errorf("mpc: internal error: dealt %d bytes of shares and %d/%d of keys, sized %d and %d",
			len(d.b), len(d.keysA), len(d.keysB), d.shares, d.nkeys)
	}
	ma.putHeader(d.msgA)
	copy(d.msgA[stepHeader:], d.seedA[:])
	binary.BigEndian.PutUint32(d.msgA[prepBodyA-4:], uint32(d.nkeys))
	mb.putHeader(d.msgB)
	binary.BigEndian.PutUint32(d.msgB[stepHeader:], uint32(d.shares))
	binary.BigEndian.PutUint32(d.msgB[prepKeysB(d.shares)-4:], uint32(d.nkeys))
	return d.msgA, d.msgB, nil
}

// share hands out additive shares of vals: A's from its PRG, B's explicit.
func (d *dealing) share(vals []uint64) {
	if d.count {
		d.nShares += 8 * len(vals)
		if countHook != nil {
			countHook("share", 8*len(vals))
		}
		return
	}
	a := d.prgScratch(len(vals))
	for i, v := range vals {
		d.b = binary.BigEndian.AppendUint64(d.b, v-a[i])
	}
}

// share32 hands out shares of vals mod 2^32 (for values the parties only
// use multiplied by 2^32): A's from its PRG, a whole word as for share, and
// B's explicit in 4 bytes, the low 32 bits of the value less A's share.
func (d *dealing) share32(vals []uint64) {
	if d.count {
		d.nShares += 4 * len(vals)
		if countHook != nil {
			countHook("share", 4*len(vals))
		}
		return
	}
	a := d.prgScratch(len(vals))
	for i, v := range vals {
		d.b = binary.BigEndian.AppendUint32(d.b, uint32(v-a[i]))
	}
}

// prgScratch returns A's next n PRG words in the dealing's scratch buffer,
// valid until the next call: share and share32 only subtract them, and a
// new buffer per call (megabytes per step) would be written in memory not
// touched since the last collection.
func (d *dealing) prgScratch(n int) []uint64 {
	if cap(d.scratch) < n {
		d.scratch = make([]uint64, n, n+n/4)
	}
	d.scratch = d.scratch[:n]
	d.a.fill(d.scratch)
	return d.scratch
}

// shareKept is share, recording A's and B's shares in kept when keep is
// set.
func (d *dealing) shareKept(vals []uint64) {
	if d.count || !d.keep {
		d.share(vals)
		return
	}
	a, _ := d.a.next(len(vals))
	ka, kb := a, make([]uint64, len(vals))
	for i, v := range vals {
		kb[i] = v - a[i]
		d.b = binary.BigEndian.AppendUint64(d.b, kb[i])
	}
	d.kept = append(d.kept, [2][]uint64{ka, kb})
}

// countHook, set only by tests (TestPrepBreakdown), sees every piece a
// counting dealing counts: its kind (share, dpf, cmp) and bytes.
var countHook func(kind string, bytes int)

// uniform returns n fresh uniform ring elements known to the dealer only.
func (d *dealing) uniform(n int) []uint64 {
	if d.count {
		return make([]uint64, n)
	}
	d.uniforms++
	if zeroUniform != nil && zeroUniform(d.uniforms-1) {
		return make([]uint64, n)
	}
	out := make([]uint64, n)
	if _, err := io.ReadFull(d.rng, wordBytes(out)); err != nil && d.err == nil {
		d.err = fmt.Errorf("mpc: dealer randomness: %w", err)
	}
	fromLittleEndian(out)
	return out
}

// dpfKeys appends a key pair for the point alpha (payload beta) over 2^bits.
func (d *dealing) dpfKeys(alpha, beta uint64, bits int) {
	if d.count {
		d.nKeys += dpf.KeySize(bits)
		if countHook != nil {
			countHook("dpf", dpf.KeySize(bits))
		}
		return
	}
	var err error
	d.keysA, d.keysB, err = dpf.AppendGen(d.keysA, d.keysB, alpha, beta, bits, d.rng)
	if err != nil && d.err == nil {
		d.err = err
	}
}

// vecKeys appends a vector key pair for the point alpha with payload
// (beta0, beta1) over 2^bits.
func (d *dealing) vecKeys(alpha, beta0, beta1 uint64, bits int) {
	if d.count {
		d.nKeys += dpf.VecKeySize(bits, 2)
		if countHook != nil {
			countHook("dpf", dpf.VecKeySize(bits, 2))
		}
		return
	}
	d.keyYield()
	var err error
	d.keysA, d.keysB, err = dpf.AppendGenVec(d.keysA, d.keysB, alpha, []uint64{beta0, beta1}, bits, d.rng)
	if err != nil && d.err == nil {
		d.err = err
	}
}

// cmpKeys appends a comparison key pair for [x < alpha] (payload beta)
// over 2^bits.
func (d *dealing) cmpKeys(alpha, beta uint64, bits int) {
	if d.count {
		d.nKeys += dpf.CmpKeySize(bits)
		if countHook != nil {
			countHook("cmp", dpf.CmpKeySize(bits))
		}
		return
	}
	d.keyYield()
	var err error
	d.keysA, d.keysB, err = dpf.AppendGenLess(d.keysA, d.keysB, alpha, beta, bits, d.rng)
	if err != nil && d.err == nil {
		d.err = err
	}
}

// prepSize is the size of a PREP's variable parts at position pos: B's
// shares and either party's LUT keys, in bytes. Only the softmax over the
// cached positions grows with pos, linearly, so two dry runs of the dealer
// (positions 0 and 1) give every position.
type prepSize struct{ shares0, sharesStep, keys0, keysStep int }

func newPrepSize(cfg Config, par Params) prepSize {
	at := func(pos int) (int, int) {
		d := &Dealer{cfg: cfg, par: par, step: uint32(pos), masks: make([]uint64, pos*2*cfg.kvDim())}
		dl := &dealing{count: true}
		d.deal(dl)
		return dl.nShares, dl.nKeys
	}
	s0, k0 := at(0)
	s1, k1 := at(1)
	return prepSize{shares0: s0, sharesStep: s1 - s0, keys0: k0, keysStep: k1 - k0}
}

func (p prepSize) at(pos int) (shares, keys int) {
	return p.shares0 + pos*p.sharesStep, p.keys0 + pos*p.keysStep
}
