package hop

import (
	"bytes"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/unfed/unfed/relay/verify"
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
	// spec/11's messages.
	f.Add((&CommitOn{Nonce: [32]byte{1}}).Append(nil))
	f.Add((&Reveal{Start: 1, Count: 2}).Append(nil))
	f.Add((&Commit{}).Append(nil))
	f.Add((&Revealed{Activations{Start: 0, N: 1, Dim: 2, Data: []float32{1, 2}, Final: true}}).Append(nil))
	f.Add((&Ticket{Total: 9, Offset: 3, Data: []byte{1, 2}}).Append(nil))
	f.Add((&TicketOK{}).Append(nil))
	f.Add((&PartyCommit{verify.PartyStep{Step: 2, Start: 5, Count: 1, Prep: [32]byte{9}}}).Append(nil))
	f.Add((&PartyReveal{What: RevealPeerSent, Steps: 3}).Append(nil))
	f.Add((&PartyReveal{What: RevealMasksB, From: 2, Steps: 3}).Append(nil))
	f.Add((&PartyReveal{What: RevealPrepA, From: 0, Steps: 0}).Append(nil))
	f.Add((&PartyRevealed{Final: true, Data: []byte{0, 0, 0, 1, 0, 0, 0, 1, 7}}).Append(nil))
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
		if a, ok := m.(*Activations); ok {
			// Decoded into a session's used scratch: the same rows.
			dirty := slices.Repeat([]float32{float32(math.NaN())}, 1+len(a.Data)/2)
			m2, err := decodeEdgeInto(b, false, dirty)
			if err != nil || !bytes.Equal(m2.Append(nil), enc) {
				t.Fatalf("activations decoded into a used buffer differ: %v", err)
			}
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

// The decoders of the confidential messages (spec/10 §3.4–§3.6), each with
// the exact property its layout promises.

// FuzzSetupV2: whatever SETUP Decode accepts satisfies the field rules of
// spec §3.2 and spec/10 §3.2, and re-encodes (keys in slot order, no
// extensions) to a message that decodes to the same fields.
func FuzzSetupV2(f *testing.F) {
	for _, m := range sampleMsgs() {
		if s, ok := m.(*Setup); ok {
			f.Add(s.Append(nil))
			f.Add(append(s.Append(nil), 0xde, 0xad))
		}
	}
	f.Add([]byte{byte(TypeSetup), Version})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[0] != byte(TypeSetup) {
			return
		}
		m, err := Decode(b)
		if err != nil {
			return
		}
		s := m.(*Setup)
		if s.Role > RoleDealer || s.Input > InputHidden || s.DType.Size() == 0 || s.First >= s.Last ||
			(s.NextLast != 0 && s.NextLast <= s.Last) || (s.Out == nil) != (s.OutHops == 0) || s.ModelID == "" ||
			(s.HiddenOut && (s.TopK != 0 || s.Role != RoleCompute)) {
			t.Fatalf("accepted %+v", s)
		}
		enc := s.Append(nil)
		if len(enc) > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(enc))
		}
		again, err := Decode(enc)
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("re-encoded SETUP: %v %+v", err, again)
		}
	})
}

// FuzzHidden: an accepted HIDDEN or FINAL_HIDDEN (spec §3.11) holds exactly
// n × dim values of its dtype, a FINAL_HIDDEN one row, positions below
// MaxContextField, and re-encodes to a message that decodes the same.
func FuzzHidden(f *testing.F) {
	for _, m := range sampleMsgs() {
		if h, ok := m.(*Hidden); ok {
			f.Add(h.Append(nil))
		}
	}
	f.Add([]byte{byte(TypeFinal), 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || (b[0] != byte(TypeHidden) && b[0] != byte(TypeFinal)) {
			return
		}
		m, err := Decode(b)
		if err != nil {
			return
		}
		h := m.(*Hidden)
		if h.N < 1 || h.Dim < 1 || len(h.Data) != h.N*h.Dim || h.Start+h.N > MaxContextField ||
			(h.Out && h.N != 1) || h.Out != (b[0] == byte(TypeFinal)) {
			t.Fatalf("accepted %d×%d at %d (out %v) with %d values", h.N, h.Dim, h.Start, h.Out, len(h.Data))
		}
		again, err := Decode(h.Append(nil))
		if err != nil || again.(*Hidden).N != h.N || again.(*Hidden).Start != h.Start {
			t.Fatalf("re-encoded: %v", err)
		}
	})
}

// FuzzBundleMsgs: an accepted BUNDLE_GET asks for 1..MaxBundleRead bytes
// below 2^40 of a named model, an accepted BUNDLE_DATA lies within its
// total, and both re-encode to the bytes they came from.
func FuzzBundleMsgs(f *testing.F) {
	for _, m := range sampleMsgs() {
		if m.Type() == TypeBundleGet || m.Type() == TypeBundle {
			f.Add(m.Append(nil))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || (b[0] != byte(TypeBundleGet) && b[0] != byte(TypeBundle)) {
			return
		}
		m, err := Decode(b)
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *BundleGet:
			if m.Length < 1 || m.Length > MaxBundleRead || m.Offset < 0 || m.Offset >= MaxBundleSize || m.ModelID == "" {
				t.Fatalf("accepted %+v", m)
			}
		case *BundleData:
			if m.Offset < 0 || m.Offset+int64(len(m.Data)) > m.Total || m.Total > MaxBundleSize {
				t.Fatalf("accepted %d bytes at %d of %d", len(m.Data), m.Offset, m.Total)
			}
		}
		if !bytes.Equal(m.Append(nil), b) {
			t.Fatalf("re-encoded differently")
		}
	})
}

// FuzzDeal: an accepted DEAL is exactly its 9 bytes, asks for 1..1024 steps
// and stays below MaxContextField.
func FuzzDeal(f *testing.F) {
	f.Add((&Deal{Step: 3, Rows: 2}).Append(nil))
	f.Add((&Deal{Step: MaxContextField - 1, Rows: 1}).Append(nil))
	f.Add([]byte{byte(TypeDeal), 0, 0, 0, 0, 0, 0, 4, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[0] != byte(TypeDeal) {
			return
		}
		m, err := Decode(b)
		if err != nil {
			return
		}
		d := m.(*Deal)
		if d.Rows < 1 || d.Rows > MaxDealRows || d.Step+d.Rows > MaxContextField {
			t.Fatalf("accepted %+v", d)
		}
		if !bytes.Equal(d.Append(nil), b) {
			t.Fatal("DEAL not byte-stable")
		}
	})
}

// FuzzMPCInputOutput: an accepted MPC_INPUT or MPC_OUTPUT has a body and
// re-encodes to its input with the unknown flag bits cleared.
func FuzzMPCInputOutput(f *testing.F) {
	f.Add((&MPCInput{Final: true, Body: []byte{1, 2}}).Append(nil))
	f.Add((&MPCOutput{Final: true, Body: []byte{1, 2}}).Append(nil))
	f.Add([]byte{byte(TypeMPCOutput), 0xff, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || (b[0] != byte(TypeMPCInput) && b[0] != byte(TypeMPCOutput)) {
			return
		}
		m, err := Decode(b)
		if err != nil {
			if len(b) >= 3 {
				t.Fatalf("refused %x: %v", b, err)
			}
			return
		}
		var body []byte
		switch m := m.(type) {
		case *MPCInput:
			body = m.Body
		case *MPCOutput:
			body = m.Body
		}
		want := append([]byte(nil), b...)
		want[1] &= flagFinal
		if len(body) == 0 || !bytes.Equal(m.Append(nil), want) {
			t.Fatalf("%v not stable: %x", m.Type(), m.Append(nil))
		}
	})
}

// FuzzPrepReshare: an accepted MPC_PREP or MPC_RESHARE has a body and
// re-encodes to its input with the unknown flag bits cleared.
func FuzzPrepReshare(f *testing.F) {
	f.Add((&MPCPrep{More: true, Body: []byte{4, 4}}).Append(nil))
	f.Add((&MPCReshare{Final: true, Body: []byte{4, 6}}).Append(nil))
	f.Add([]byte{byte(EdgeMPCPrep), 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || (b[0] != byte(EdgeMPCPrep) && b[0] != byte(EdgeMPCReshare)) {
			return
		}
		m, err := DecodeEdge(b)
		if err != nil {
			if len(b) >= 3 {
				t.Fatalf("refused %x: %v", b, err)
			}
			return
		}
		want := append([]byte(nil), b...)
		var body []byte
		switch m := m.(type) {
		case *MPCPrep:
			want[1] &= flagMore
			body = m.Body
		case *MPCReshare:
			want[1] &= flagFinal
			body = m.Body
		}
		if len(body) == 0 || !bytes.Equal(m.Append(nil), want) {
			t.Fatalf("%v not stable: %x", m.EdgeType(), m.Append(nil))
		}
	})
}
