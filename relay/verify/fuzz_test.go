package verify

import (
	"bytes"
	"crypto/ed25519"
	"testing"
)

type edSigner ed25519.PrivateKey

func (k edSigner) Sign(m []byte) []byte { return ed25519.Sign(ed25519.PrivateKey(k), m) }

func seedCommitment(t testing.TB, kind Kind) *Commitment {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	c := &Commitment{ModelID: "m", First: 0, Last: 2, Start: 0, Count: 2, InKind: kind, OutKind: KindF32}
	if kind != KindTokens {
		c.First = 1
	}
	h := NewHasher(kind)
	if kind == KindTokens {
		h.Tokens([]int{1, 2})
	} else {
		h.Floats([]float32{1, 2, 3, 4})
	}
	c.In = h.Sum()
	c.InChain = ChainNext([32]byte{}, 0, 2, c.In)
	c.OutChain = OutChainNext([32]byte{}, 0, 2, c.Out)
	if err := c.Sign(edSigner(priv), priv.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	return c
}

// FuzzDecodeCommitment: an accepted commitment re-encodes to the same bytes
// and nothing panics.
func FuzzDecodeCommitment(f *testing.F) {
	f.Add(seedCommitment(f, KindTokens).Append(nil))
	f.Add(seedCommitment(f, KindF16).Append(nil))
	f.Add([]byte{2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommitment(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Append(nil), b) {
			t.Fatalf("re-encoding differs")
		}
		_ = c.Verify()
	})
}

// FuzzDecodeStep: an accepted COMMIT body re-encodes to the same bytes.
func FuzzDecodeStep(f *testing.F) {
	s := Step{Start: 3, Count: 1}
	f.Add(s.Append(nil))
	f.Add(make([]byte, StepSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeStep(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Append(nil), b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzDecodeTicket: an accepted ticket (or fraud proof) re-encodes to the
// same bytes, its steps tile the prefix up to the committed step, and its
// inputs alias the input (nothing allocated beyond the step list).
func FuzzDecodeTicket(f *testing.F) {
	c := seedCommitment(f, KindTokens)
	tk := &Ticket{Commitment: c, Steps: []Input{{Start: 0, Count: 2, Data: []byte{0, 0, 0, 1, 0, 0, 0, 2}}}}
	f.Add(tk.Append(nil))
	c2 := seedCommitment(f, KindF16)
	tk2 := &Ticket{Commitment: c2, Dim: 2, Steps: []Input{{Start: 0, Count: 1, Data: make([]byte, 4)}, {Start: 1, Count: 1, Data: make([]byte, 4)}}}
	c2.Start, c2.Count = 1, 1
	f.Add(tk2.Append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := DecodeTicket(b)
		if err != nil {
			return
		}
		if !bytes.Equal(tk.Append(nil), b) {
			t.Fatalf("re-encoding differs")
		}
		next := 0
		for _, s := range tk.Steps {
			if s.Start != next || len(s.Data) != s.Count*rowBytes(tk.Commitment.InKind, tk.Dim) {
				t.Fatalf("step [%d,+%d) with %d bytes after %d", s.Start, s.Count, len(s.Data), next)
			}
			next += s.Count
		}
		if next != tk.Commitment.Start+tk.Commitment.Count {
			t.Fatalf("steps end at %d", next)
		}
	})
}

// TestChainTruncate: a chain rewound to a step boundary gives the same
// commitments as one that never went past it; inside a step it refuses.
func TestChainTruncate(t *testing.T) {
	a, b := NewChain(Binding{ModelID: "m", Last: 1}), NewChain(Binding{ModelID: "m", Last: 1})
	s1 := &Step{Start: 0, Count: 3, In: [32]byte{1}, Out: [32]byte{4}}
	s2 := &Step{Start: 3, Count: 1, In: [32]byte{2}, Out: [32]byte{5}}
	s2b := &Step{Start: 3, Count: 1, In: [32]byte{3}, Out: [32]byte{6}}
	a.Commitment(s1)
	a.Commitment(s2)
	if a.Truncate(2) {
		t.Fatal("truncated inside a step")
	}
	if !a.Truncate(3) {
		t.Fatal("could not truncate to a step boundary")
	}
	ca, _ := a.Commitment(s2b)
	b.Commitment(s1)
	cb, _ := b.Commitment(s2b)
	if ca.InChain != cb.InChain || ca.OutChain != cb.OutChain {
		t.Fatal("a rewound chain differs from a fresh one")
	}
	if _, ok := b.Commitment(s1); ok {
		t.Fatal("a step that does not continue the chain was accepted")
	}
}
