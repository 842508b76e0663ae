package verify

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"math"
	"slices"

	"github.com/unfed/unfed/compute/tensor"
)

// Kind is what a step's input or output hash covers (spec/11 §2.2).
type Kind uint8

// Kinds.
const (
	// KindF32 is activation rows as little-endian f32.
	KindF32 Kind = 0
	// KindF16 is activation rows as little-endian IEEE binary16.
	KindF16 Kind = 1
	// KindTokens is token ids as big-endian u32 (the first hop's input).
	KindTokens Kind = 2
	// KindLogits is the last shard's output for the step's last position
	// (its logits vector) as little-endian f32.
	KindLogits Kind = 3
	// KindFinal is the last shard's output for the step's last position
	// when it returns the final hidden state (FINAL_HIDDEN, the client
	// applies the head) as little-endian f32.
	KindFinal Kind = 4
)

func (k Kind) valid() bool { return k <= KindFinal }

// last reports whether k is a last shard's output kind.
func (k Kind) last() bool { return k == KindLogits || k == KindFinal }

// elemSize is the bytes per element of an activation or token kind.
func (k Kind) elemSize() int {
	switch k {
	case KindF16:
		return 2
	case KindF32, KindTokens, KindLogits, KindFinal:
		return 4
	}
	return 0
}

func (k Kind) String() string {
	switch k {
	case KindF32:
		return "f32"
	case KindF16:
		return "f16"
	case KindTokens:
		return "tokens"
	case KindLogits:
		return "logits"
	case KindFinal:
		return "final"
	}
	return "kind(?)"
}

// Hasher accumulates the hash of one step's input or output (spec/11
// §2.2): the elements in order, encoded as the kind says, whatever the
// chunks they arrived in. The zero value is not usable; use NewHasher.
type Hasher struct {
	kind Kind
	h    hash.Hash
	// buf holds one chunk's encoding. An array, not a slice grown by
	// appends: a step's rows are encoded chunk by chunk into the same
	// bytes, and a new session's Hasher touches no memory but its own
	// (growing a slice value by value cost 0.2-0.4 ms per 8,192 values on
	// the project's VMs, where a fresh page costs 15 us and more to fault
	// in; issue 16).
	buf [hashChunk * 4]byte
}

// hashChunk is how many elements Hasher encodes at a time.
const hashChunk = 1024

// NewHasher returns a Hasher for kind k.
func NewHasher(k Kind) *Hasher {
	return &Hasher{kind: k, h: sha256.New()}
}

// Floats adds values: rows for KindF32 and KindF16 (converted to binary16
// first, as a hop sends them), the logits vector for KindLogits, the final
// hidden row for KindFinal.
func (h *Hasher) Floats(vs []float32) {
	for len(vs) > 0 {
		n := min(len(vs), hashChunk)
		h.h.Write(putFloats(h.buf[:], h.kind, vs[:n]))
		vs = vs[n:]
	}
}

// Tokens adds token ids (KindTokens).
func (h *Hasher) Tokens(ids []int) {
	for len(ids) > 0 {
		n := min(len(ids), hashChunk)
		for i, id := range ids[:n] {
			binary.BigEndian.PutUint32(h.buf[4*i:], uint32(id))
		}
		h.h.Write(h.buf[:4*n])
		ids = ids[n:]
	}
}

// Sum returns the hash and resets the Hasher for the next step.
func (h *Hasher) Sum() [32]byte {
	var s [32]byte
	h.h.Sum(s[:0])
	h.h.Reset()
	return s
}

// AppendFloats appends vs encoded as kind k (f16 for KindF16, f32 little
// endian otherwise), growing dst at most once.
func AppendFloats(dst []byte, k Kind, vs []float32) []byte {
	size := 4
	if k == KindF16 {
		size = 2
	}
	n := len(dst)
	dst = slices.Grow(dst, size*len(vs))[:n+size*len(vs)]
	putFloats(dst[n:], k, vs)
	return dst
}

// putFloats encodes vs as kind k at the start of dst, which has room, and
// returns the bytes written.
func putFloats(dst []byte, k Kind, vs []float32) []byte {
	if k == KindF16 {
		dst = dst[:2*len(vs)]
		for i, v := range vs {
			binary.LittleEndian.PutUint16(dst[2*i:], tensor.F32ToF16(v))
		}
		return dst
	}
	dst = dst[:4*len(vs)]
	for i, v := range vs {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
	return dst
}

// chainContext and outChainContext separate the input and output chains
// from every other hash.
const (
	chainContext    = "unfed-commit-chain-v1"
	outChainContext = "unfed-commit-outchain-v1"
)

// ChainNext returns the input chain after a step (spec/11 §2.3):
//
//	chain_k = H("unfed-commit-chain-v1" || chain_{k-1} || start u32 || count u32 || in_k)
//
// with chain_{-1} 32 zero bytes. It binds every input of the session so
// far, so a ticket's inputs for the session prefix are the ones the hop
// computed on.
func ChainNext(prev [32]byte, start, count int, in [32]byte) [32]byte {
	return chainNext(chainContext, prev, start, count, in)
}

// OutChainNext returns the output chain after a step (spec/11 §2.3):
//
//	outchain_k = H("unfed-commit-outchain-v1" || outchain_{k-1} || start u32 || count u32 || out_k)
//
// with outchain_{-1} 32 zero bytes. It binds every output of the session
// so far, so the last step's commitment is a commitment to all of them.
func OutChainNext(prev [32]byte, start, count int, out [32]byte) [32]byte {
	return chainNext(outChainContext, prev, start, count, out)
}

func chainNext(context string, prev [32]byte, start, count int, in [32]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(context))
	h.Write(prev[:])
	var b [8]byte
	binary.BigEndian.PutUint32(b[:], uint32(start))
	binary.BigEndian.PutUint32(b[4:], uint32(count))
	h.Write(b[:])
	h.Write(in[:])
	var s [32]byte
	h.Sum(s[:0])
	return s
}
