package verify

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"testing"

	"github.com/unfed/unfed/compute/tensor"
)

// TestHasherChunks: a step's hash is SHA-256 of its elements' encoding
// (spec/11 §2.2) whatever the calls they came in, across Hasher's chunks,
// and AppendFloats appends that same encoding.
func TestHasherChunks(t *testing.T) {
	vs := make([]float32, 3*hashChunk+17)
	for i := range vs {
		vs[i] = float32(i)*0.37 - 100
	}
	for _, k := range []Kind{KindF32, KindF16, KindFinal} {
		var plain []byte
		for _, v := range vs {
			if k == KindF16 {
				plain = binary.LittleEndian.AppendUint16(plain, tensor.F32ToF16(v))
			} else {
				plain = binary.LittleEndian.AppendUint32(plain, math.Float32bits(v))
			}
		}
		want := sha256.Sum256(plain)
		h := NewHasher(k)
		h.Floats(vs[:5])
		h.Floats(vs[5 : hashChunk+3])
		h.Floats(vs[hashChunk+3:])
		if got := h.Sum(); got != want {
			t.Errorf("kind %v: hash of three calls differs from SHA-256 of the encoding", k)
		}
		h.Floats(vs)
		if got := h.Sum(); got != want {
			t.Errorf("kind %v: hash after Sum's reset differs", k)
		}
		prefix := []byte{9}
		if got := AppendFloats(prefix, k, vs); string(got[1:]) != string(plain) || got[0] != 9 {
			t.Errorf("kind %v: AppendFloats is not the encoding", k)
		}
	}
	ids := make([]int, 2*hashChunk+5)
	var plain []byte
	for i := range ids {
		ids[i] = i * 7
		plain = binary.BigEndian.AppendUint32(plain, uint32(ids[i]))
	}
	h := NewHasher(KindTokens)
	h.Tokens(ids[:1])
	h.Tokens(ids[1:])
	if h.Sum() != sha256.Sum256(plain) {
		t.Error("tokens: hash differs from SHA-256 of the encoding")
	}
}
