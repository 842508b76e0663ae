package hop

import (
	"bytes"
	"testing"
)

// FuzzComputeMessage: Decode never panics, and whatever it accepts re-encodes
// to something that decodes to the same message.
func FuzzComputeMessage(f *testing.F) {
	for _, m := range sampleMsgs() {
		f.Add(m.Append(nil))
	}
	f.Add([]byte{})
	f.Add([]byte{byte(TypeSetup), 2})
	f.Add([]byte{byte(TypeLogits), 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		enc := m.Append(nil)
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded %v does not decode: %v", m.Type(), err)
		}
		if !bytes.Equal(m2.Append(nil), enc) {
			t.Fatalf("%v not stable under re-encoding", m.Type())
		}
	})
}

// FuzzComputeEdgeMessage: DecodeEdge never panics and round-trips.
func FuzzComputeEdgeMessage(f *testing.F) {
	for _, m := range sampleEdges() {
		f.Add(m.Append(nil))
	}
	f.Add([]byte{byte(EdgeActivations), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeEdge(b)
		if err != nil {
			return
		}
		enc := m.Append(nil)
		if _, err := DecodeEdge(enc); err != nil {
			t.Fatalf("re-encoded %v does not decode: %v", m.EdgeType(), err)
		}
		if a, ok := m.(*Activations); ok && a.DType == F32 {
			// Unknown flag bits are ignored, so they do not survive.
			want := append([]byte(nil), b...)
			want[14] &= flagFinal
			if !bytes.Equal(enc, want) {
				t.Fatal("f32 activations not byte-stable")
			}
		}
	})
}

// FuzzComputeEdgeOpen: an opener fed arbitrary envelopes never panics and
// never accepts one it did not get from the matching sealer.
func FuzzComputeEdgeOpen(f *testing.F) {
	s := secret(1)
	seal, _ := NewSealer(s, ChanData)
	env, _ := seal.Seal(nil, []byte("activations"))
	f.Add(env)
	f.Add([]byte{})
	f.Add([]byte{byte(ChanPairBA), 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = EnvelopeChannel(b)
		o, _ := NewOpener(s, ChanData)
		in := append([]byte(nil), b...)
		pt, err := o.Open(in)
		if err == nil && !bytes.Equal(b, env) {
			t.Fatalf("forged envelope accepted: %x", pt)
		}
	})
}
