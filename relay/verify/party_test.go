package verify

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"testing"
)

// partySession builds the commitments of one step of a two-stage
// confidential session that is consistent: every piece hash equals the one
// it is checked against. keys[i] signs the commitment of position i (D1 A1
// B1 D2 A2 B2).
func partySession(t testing.TB) (st []StageStep, inA, inB, outA, outB [32]byte) {
	t.Helper()
	h := func(b byte) [32]byte { return BodyHash([]byte{b}) }
	inA, inB, outA, outB = h(1), h(2), h(3), h(4)
	mk := func(pos int, role PartyRole, s PartyStep) *PartyCommitment {
		priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(pos + 1)}, 32))
		c := NewPartyChain(PartyBinding{ModelID: "m", First: 2 * (pos / 3), Last: 2*(pos/3) + 2, Role: role, Nonce: [32]byte{7}})
		s.Step, s.Start, s.Count = 0, 0, 3
		pc, ok := c.Commitment(&s)
		if !ok {
			t.Fatal("first step refused")
		}
		if err := pc.Sign(edSigner(priv), priv.Public().(ed25519.PublicKey)); err != nil {
			t.Fatal(err)
		}
		return pc
	}
	d1 := mk(0, Dealer, PartyStep{Out: [2][32]byte{h(10), h(11)}, State: [2][32]byte{h(40), h(41)}})
	a1 := mk(1, PartyA, PartyStep{In: [2][32]byte{inA}, Out: [2][32]byte{h(20), h(21)}, Prep: h(10), Peer: [2][32]byte{h(30), h(31)},
		State: [2][32]byte{h(50), h(40)}})
	b1 := mk(2, PartyB, PartyStep{In: [2][32]byte{inB}, Out: [2][32]byte{h(22), h(23)}, Prep: h(11), Peer: [2][32]byte{h(31), h(30)},
		State: [2][32]byte{h(50), h(41)}})
	d2 := mk(3, Dealer, PartyStep{Out: [2][32]byte{h(12), h(13)}, State: [2][32]byte{h(42), h(43)}})
	a2 := mk(4, PartyA, PartyStep{In: [2][32]byte{h(20), h(23)}, Out: [2][32]byte{outA}, Prep: h(12), Peer: [2][32]byte{h(32), h(33)},
		State: [2][32]byte{h(51), h(42)}})
	b2 := mk(5, PartyB, PartyStep{In: [2][32]byte{h(22), h(21)}, Out: [2][32]byte{outB}, Prep: h(13), Peer: [2][32]byte{h(33), h(32)},
		State: [2][32]byte{h(51), h(43)}})
	return []StageStep{{d1, a1, b1}, {d2, a2, b2}}, inA, inB, outA, outB
}

// TestCheckPartiesMutations: an honest step passes; changing any one hash
// of any commitment (or its step or positions) fails, naming the stage and
// role whose commitment disagrees with its sender's (spec/11 §7.2). This is
// the property the client relies on: no single altered piece, output or
// PREP goes unnoticed.
func TestCheckPartiesMutations(t *testing.T) {
	st, inA, inB, outA, outB := partySession(t)
	if err := CheckParties(st, inA, inB, outA, outB); err != nil {
		t.Fatalf("honest step: %v", err)
	}
	for _, c := range []*PartyCommitment{st[0].D, st[0].A, st[0].B, st[1].D, st[1].A, st[1].B} {
		if !c.Verify() {
			t.Fatalf("%v: signature does not verify", c.Role)
		}
	}
	type field struct {
		name string
		get  func(c *PartyCommitment) *[32]byte
	}
	fields := []field{
		{"in0", func(c *PartyCommitment) *[32]byte { return &c.In[0] }},
		{"in1", func(c *PartyCommitment) *[32]byte { return &c.In[1] }},
		{"out0", func(c *PartyCommitment) *[32]byte { return &c.Out[0] }},
		{"out1", func(c *PartyCommitment) *[32]byte { return &c.Out[1] }},
		{"prep", func(c *PartyCommitment) *[32]byte { return &c.Prep }},
		{"peer sent", func(c *PartyCommitment) *[32]byte { return &c.Peer[0] }},
		{"peer received", func(c *PartyCommitment) *[32]byte { return &c.Peer[1] }},
		{"state opened", func(c *PartyCommitment) *[32]byte { return &c.State[0] }},
		{"state masks", func(c *PartyCommitment) *[32]byte { return &c.State[1] }},
	}
	for si := range st {
		for _, role := range []PartyRole{Dealer, PartyA, PartyB} {
			for _, f := range fields {
				st, inA, inB, outA, outB := partySession(t)
				c := map[PartyRole]*PartyCommitment{Dealer: st[si].D, PartyA: st[si].A, PartyB: st[si].B}[role]
				f.get(c)[0] ^= 1
				err := CheckParties(st, inA, inB, outA, outB)
				var pm *PartyMismatch
				if !errors.As(err, &pm) {
					t.Fatalf("stage %d %v %s altered: %v", si+1, role, f.name, err)
				}
				// A mismatch names the altered commitment, as the receiver
				// or as the sender of the pair.
				named := (pm.Stage == si && pm.Role == role) || (pm.Sender != 0 && pm.SenderStage == si && pm.Sender == role)
				if !named {
					t.Errorf("stage %d %v %s altered: named stage %d %v and stage %d %v", si+1, role, f.name,
						pm.Stage+1, pm.Role, pm.SenderStage+1, pm.Sender)
				}
			}
		}
	}
	for _, d := range []int{-1, 1} {
		st, inA, inB, outA, outB := partySession(t)
		st[1].B.Step += d
		if err := CheckParties(st, inA, inB, outA, outB); err == nil {
			t.Fatalf("step off by %d accepted", d)
		}
		st, _, _, _, _ = partySession(t)
		st[0].D.Start += 1
		if err := CheckParties(st, inA, inB, outA, outB); err == nil {
			t.Fatal("positions of another step accepted")
		}
	}
}

// TestPartyCommitmentSignature: the signature covers every field: altering
// any byte of the encoding but the signature makes it fail, and a decoded
// commitment re-encodes to the same bytes.
func TestPartyCommitmentSignature(t *testing.T) {
	st, _, _, _, _ := partySession(t)
	c := st[1].B
	enc := c.Append(nil)
	d, err := DecodePartyCommitment(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.Append(nil), enc) || !d.Verify() {
		t.Fatal("decoded commitment differs or does not verify")
	}
	for i := 0; i < len(enc)-64; i++ {
		m := bytes.Clone(enc)
		m[i] ^= 1
		if d, err := DecodePartyCommitment(m); err == nil && d.Verify() {
			t.Fatalf("commitment with byte %d altered still verifies", i)
		}
	}
}

// TestPartyChain: steps must come in order and continue the positions; the
// chain of a step binds every step before it.
func TestPartyChain(t *testing.T) {
	a, b := NewPartyChain(PartyBinding{ModelID: "m", Last: 1}), NewPartyChain(PartyBinding{ModelID: "m", Last: 1})
	s0 := &PartyStep{Step: 0, Start: 0, Count: 3, Prep: [32]byte{1}}
	s0b := &PartyStep{Step: 0, Start: 0, Count: 3, Prep: [32]byte{2}}
	s1 := &PartyStep{Step: 1, Start: 3, Count: 1}
	if _, ok := a.Commitment(s1); ok {
		t.Fatal("step 1 accepted first")
	}
	a.Commitment(s0)
	b.Commitment(s0b)
	if _, ok := a.Commitment(&PartyStep{Step: 1, Start: 4, Count: 1}); ok {
		t.Fatal("a step that does not continue the positions was accepted")
	}
	ca, _ := a.Commitment(s1)
	cb, _ := b.Commitment(s1)
	if ca.Chain == cb.Chain {
		t.Fatal("the chain does not bind an earlier step's PREP")
	}
}

// FuzzDecodePartyCommitment: an accepted commitment re-encodes to the same
// bytes and nothing panics.
func FuzzDecodePartyCommitment(f *testing.F) {
	st, _, _, _, _ := partySession(f)
	f.Add(st[0].D.Append(nil))
	f.Add(st[1].A.Append(nil))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodePartyCommitment(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Append(nil), b) {
			t.Fatalf("re-encoding differs")
		}
		_ = c.Verify()
	})
}

// FuzzDecodePartyStep: an accepted PARTY_COMMIT body re-encodes to the
// same bytes.
func FuzzDecodePartyStep(f *testing.F) {
	s := PartyStep{Step: 1, Start: 3, Count: 1}
	f.Add(s.Append(nil))
	f.Add(make([]byte, PartyStepSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodePartyStep(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Append(nil), b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// BenchmarkPartyCommit is a signer's fixed cost per step: the chain hash
// and the signature (sign), and the client's per signer (rebuild and
// verify); BodyHash is the hashing of pieces and PREPs, per byte.
func BenchmarkPartyCommit(b *testing.B) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	pub := priv.Public().(ed25519.PublicKey)
	bind := PartyBinding{ModelID: "0f3e71476a6c22edac2a13cf9e55a3c61010c5009e62b13f750392c535e3578b", First: 2, Last: 5, Role: PartyA}
	b.Run("sign", func(b *testing.B) {
		c := NewPartyChain(bind)
		for b.Loop() {
			pc, _ := c.Commitment(&PartyStep{Step: c.Step(), Start: c.Step(), Count: 1})
			if err := pc.Sign(edSigner(priv), pub); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		c := NewPartyChain(bind)
		pc, _ := c.Commitment(&PartyStep{Count: 1})
		pc.Sign(edSigner(priv), pub)
		s := pc.PartyStep
		for b.Loop() {
			c := NewPartyChain(bind)
			copy(c.Identity[:], pub)
			got, _ := c.Commitment(&s)
			if !got.Verify() {
				b.Fatal("does not verify")
			}
		}
	})
	b.Run("BodyHash-4MiB", func(b *testing.B) {
		buf := make([]byte, 4<<20)
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			BodyHash(buf)
		}
	})
}

// TestPeerHash: the hash of a step's openings binds their split into
// messages and their order, and a PeerHasher after Reset equals a fresh one.
func TestPeerHash(t *testing.T) {
	ab, a, b := []byte("ab"), []byte("a"), []byte("b")
	if PeerHash([][]byte{ab}) == PeerHash([][]byte{a, b}) {
		t.Fatal("the split into messages is not bound")
	}
	if PeerHash([][]byte{a, b}) == PeerHash([][]byte{b, a}) {
		t.Fatal("the order is not bound")
	}
	if PeerHash(nil) == ([32]byte{}) || PeerHash(nil) == PeerHash([][]byte{{}}) {
		t.Fatal("no messages and one empty message hash alike, or to zero")
	}
	var h PeerHasher
	h.Write(ab)
	h.Reset()
	h.Write(a)
	h.Write(b)
	if h.Sum() != PeerHash([][]byte{a, b}) {
		t.Fatal("Reset keeps earlier bodies")
	}
}

// TestPeerMismatchNamesBoth: openings a party received that differ from
// what the other party committed to sending name both parties of the stage.
func TestPeerMismatchNamesBoth(t *testing.T) {
	for _, role := range []PartyRole{PartyA, PartyB} {
		st, inA, inB, outA, outB := partySession(t)
		c := st[1].A
		if role == PartyB {
			c = st[1].B
		}
		c.Peer[1][3] ^= 1
		var pm *PartyMismatch
		if err := CheckParties(st, inA, inB, outA, outB); !errors.As(err, &pm) {
			t.Fatalf("%v: %v", role, err)
		}
		other := PartyA + PartyB - role
		if pm.Stage != 1 || pm.Role != role || pm.SenderStage != 1 || pm.Sender != other {
			t.Fatalf("%v's received openings altered: named %+v", role, pm)
		}
	}
}

// TestBodyHashVectors checks H against BLAKE3's published test vectors
// (input byte i is i mod 251; the first 32 bytes of the default output), so
// that a change of the BLAKE3 implementation cannot change commitments.
func TestBodyHashVectors(t *testing.T) {
	for _, v := range []struct {
		n    int
		want string
	}{
		{0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
		{1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
		{102400, "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085"},
	} {
		b := make([]byte, v.n)
		for i := range b {
			b[i] = byte(i % 251)
		}
		if h := BodyHash(b); hex.EncodeToString(h[:]) != v.want {
			t.Errorf("H of %d bytes = %x, want %s", v.n, h, v.want)
		}
	}
	if BodyHash(nil) != ([32]byte{}) {
		t.Error("H of no body is not zero")
	}
}

// TestBodyHashParts: H of a body in fragments is H of the joined body.
func TestBodyHashParts(t *testing.T) {
	b := make([]byte, 300000)
	for i := range b {
		b[i] = byte(i * 13)
	}
	for _, parts := range [][][]byte{{b}, {b[:1], b[1:]}, {b[:1024], nil, b[1024:70000], b[70000:]}, {b[:99999], b[99999:200000], b[200000:]}} {
		if BodyHashParts(parts) != BodyHash(b) {
			t.Fatalf("H of %d fragments differs", len(parts))
		}
	}
	if BodyHashParts(nil) != ([32]byte{}) {
		t.Fatal("H of no fragments is not zero")
	}
}
