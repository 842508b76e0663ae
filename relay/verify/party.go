package verify

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"

	"lukechampine.com/blake3"
)

// Commitments of the dealers and parties of a confidential circuit
// (spec/11 §7). Per step every party signs what it received, what it sent,
// the PREP it used and the openings it exchanged with the other party; every
// dealer what PREPs it sent:
//
//	            in[0]                  in[1]                  out[0]                 out[1]                 prep     peer[0], peer[1]
//	party s=1   H(its MPC_INPUT body)  zero                   H(RESHARE, channel 0)  H(RESHARE, channel 1)  H(PREP)  PeerHash(sent), PeerHash(received)
//	party s>1   H(RESHARE from same)   H(RESHARE from other)  …                      …                      H(PREP)  …
//	party last  …                      …                      H(MPC_OUTPUT body)*    zero                   H(PREP)  …
//	dealer      zero                   zero                   H(PREP to A)           H(PREP to B)           zero     zero, zero
//
// (* zero for a step without FINAL, which has no MPC_OUTPUT.) H is SHA-256
// of the message body; PeerHash is over the step's MPC_PEER bodies in
// order (PeerHasher). A chain over the steps binds the session so far, so
// the last step's commitment alone, one signature, commits to all of it.

// PartyRole is the signer's place in its stage.
type PartyRole uint8

// Party roles.
const (
	PartyA PartyRole = 1
	PartyB PartyRole = 2
	Dealer PartyRole = 3
)

func (r PartyRole) String() string {
	switch r {
	case PartyA:
		return "party A"
	case PartyB:
		return "party B"
	case Dealer:
		return "dealer"
	}
	return fmt.Sprintf("role %d", uint8(r))
}

// PartyStep is the per-step part of a party's or dealer's commitment, what
// it sends its client in PARTY_COMMIT (spec/11 §7.2):
//
//	step u32 ‖ start u32 ‖ count u32 ‖ in0 32 ‖ in1 32 ‖ out0 32 ‖ out1 32 ‖ prep 32 ‖
//	peer sent 32 ‖ peer received 32 ‖ signature 64
type PartyStep struct {
	Step  int
	Start int
	Count int
	In    [2][32]byte
	Out   [2][32]byte
	Prep  [32]byte
	// Peer is PeerHash of the MPC_PEER bodies the party sent to the other
	// party in the step (0) and received from it (1); zero for a dealer.
	Peer [2][32]byte
	// State is, for a party, H of the STATE messages (mpc.StepState) of
	// the cache rows it appended in the step: the opened rows (0, the same
	// at both parties) and its mask shares (1); for a dealer, H of the
	// mask rows it dealt to A (0) and to B (1) (mpc.StageDealer.StepMasks).
	State [2][32]byte
	Sig   [64]byte
}

// partyHashes is the number of hashes in a PartyStep.
const partyHashes = 9

// PartyStepSize is the encoded size of a PartyStep.
const PartyStepSize = 12 + partyHashes*32 + 64

// Append appends the encoding.
func (s *PartyStep) Append(dst []byte) []byte {
	return append(s.appendRecord(dst), s.Sig[:]...)
}

// appendRecord appends the encoding less the signature (a party ticket's
// step record).
func (s *PartyStep) appendRecord(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(s.Step))
	dst = binary.BigEndian.AppendUint32(dst, uint32(s.Start))
	dst = binary.BigEndian.AppendUint32(dst, uint32(s.Count))
	return s.appendHashes(dst)
}

func (s *PartyStep) appendHashes(dst []byte) []byte {
	dst = append(dst, s.In[0][:]...)
	dst = append(dst, s.In[1][:]...)
	dst = append(dst, s.Out[0][:]...)
	dst = append(dst, s.Out[1][:]...)
	dst = append(dst, s.Prep[:]...)
	dst = append(dst, s.Peer[0][:]...)
	dst = append(dst, s.Peer[1][:]...)
	dst = append(dst, s.State[0][:]...)
	return append(dst, s.State[1][:]...)
}

func (s *PartyStep) check() error {
	if s.Count < 1 || s.Step < 0 || s.Step >= MaxPositions || s.Start < 0 || s.Start+s.Count > MaxPositions {
		return malformed("party step", "step %d, positions [%d,+%d)", s.Step, s.Start, s.Count)
	}
	return nil
}

// DecodePartyStep parses exactly PartyStepSize bytes.
func DecodePartyStep(b []byte) (*PartyStep, error) {
	if len(b) != PartyStepSize {
		return nil, malformed("party step", "%d bytes", len(b))
	}
	s := decodeRecord(b)
	copy(s.Sig[:], b[partyRecordSize:])
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// decodeRecord reads a step record (at least partyRecordSize bytes).
func decodeRecord(b []byte) *PartyStep {
	s := &PartyStep{Step: int(binary.BigEndian.Uint32(b)), Start: int(binary.BigEndian.Uint32(b[4:])),
		Count: int(binary.BigEndian.Uint32(b[8:]))}
	p := b[12:partyRecordSize]
	for _, f := range [][]byte{s.In[0][:], s.In[1][:], s.Out[0][:], s.Out[1][:], s.Prep[:], s.Peer[0][:], s.Peer[1][:],
		s.State[0][:], s.State[1][:]} {
		p = p[copy(f, p):]
	}
	return s
}

// PartyBinding is what both ends of a committed party or dealer session
// know before its first step: the hop from its SETUP and COMMIT_ON, the
// client from what it sent and the consensus (the identity key).
type PartyBinding struct {
	ModelID  string
	First    int
	Last     int
	Role     PartyRole
	Nonce    [32]byte
	Identity [32]byte
}

// PartyCommitment is a party's or dealer's signed statement about one step
// of a confidential session and, through Chain, every step before it.
//
//	version   u8   3
//	id len    u8   1..128
//	model id  id len
//	first     u16
//	last      u16  first < last
//	role      u8   1 (A), 2 (B), 3 (dealer)
//	step      u32
//	start     u32
//	count     u32  ≥ 1
//	nonce     32
//	chain     32   PartyChainNext over the steps so far, this one included
//	in0, in1, out0, out1, prep, peer sent, peer received, state opened, state masks  9 × 32
//	identity  32
//	signature 64   Ed25519 over "unfed-party-commit-v3" ‖ every byte above
type PartyCommitment struct {
	PartyBinding
	PartyStep
	Chain [32]byte
}

// PartyCommitContext is the domain separation string of party commitment
// signatures.
const PartyCommitContext = "unfed-party-commit-v4"

const (
	partyCommitVersion = 4
	partyCommitFixed   = 1 + 1 + 2 + 2 + 1 + 12 + 32 + 32 + partyHashes*32 + 32 + 64
)

func (c *PartyCommitment) appendBody(dst []byte) []byte {
	dst = append(dst, partyCommitVersion, byte(len(c.ModelID)))
	dst = append(dst, c.ModelID...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.First))
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.Last))
	dst = append(dst, byte(c.Role))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Step))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Start))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Count))
	dst = append(dst, c.Nonce[:]...)
	dst = append(dst, c.Chain[:]...)
	dst = c.appendHashes(dst)
	return append(dst, c.Identity[:]...)
}

// Append appends the encoding, signature included.
func (c *PartyCommitment) Append(dst []byte) []byte {
	return append(c.appendBody(dst), c.Sig[:]...)
}

// Sign sets Identity to pub and signs with s, the private half of pub.
func (c *PartyCommitment) Sign(s Signer, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("verify: identity key of %d bytes", len(pub))
	}
	copy(c.Identity[:], pub)
	copy(c.Sig[:], s.Sign(c.appendBody([]byte(PartyCommitContext))))
	return nil
}

// ID is H(the encoding), what verifiers and authorities remember against
// replays.
func (c *PartyCommitment) ID() [32]byte { return sha256.Sum256(c.Append(nil)) }

// Verify reports whether the signature is Identity's over the commitment.
func (c *PartyCommitment) Verify() bool {
	return ed25519.Verify(ed25519.PublicKey(c.Identity[:]), c.appendBody([]byte(PartyCommitContext)), c.Sig[:])
}

// DecodePartyCommitment parses an encoded party commitment; it does not
// verify the signature. Trailing bytes are an error.
func DecodePartyCommitment(b []byte) (*PartyCommitment, error) {
	if len(b) < partyCommitFixed+1 {
		return nil, malformed("party commitment", "%d bytes", len(b))
	}
	if b[0] != partyCommitVersion {
		return nil, malformed("party commitment", "version %d", b[0])
	}
	n := int(b[1])
	if n == 0 || n > MaxModelID || len(b) != partyCommitFixed+n {
		return nil, malformed("party commitment", "%d bytes with a model id of %d", len(b), n)
	}
	c := &PartyCommitment{}
	c.ModelID = string(b[2 : 2+n])
	p := b[2+n:]
	c.First = int(binary.BigEndian.Uint16(p))
	c.Last = int(binary.BigEndian.Uint16(p[2:]))
	c.Role = PartyRole(p[4])
	c.Step = int(binary.BigEndian.Uint32(p[5:]))
	c.Start = int(binary.BigEndian.Uint32(p[9:]))
	c.Count = int(binary.BigEndian.Uint32(p[13:]))
	p = p[17:]
	for _, f := range [][]byte{c.Nonce[:], c.Chain[:], c.In[0][:], c.In[1][:], c.Out[0][:], c.Out[1][:], c.Prep[:],
		c.Peer[0][:], c.Peer[1][:], c.State[0][:], c.State[1][:], c.Identity[:], c.Sig[:]} {
		p = p[copy(f, p):]
	}
	switch {
	case c.First >= c.Last:
		return nil, malformed("party commitment", "layer range [%d,%d)", c.First, c.Last)
	case c.Role < PartyA || c.Role > Dealer:
		return nil, malformed("party commitment", "%v", c.Role)
	}
	if err := c.PartyStep.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// PartyChainNext is the chain after a step (spec/11 §7.1):
//
//	chain_k = H("unfed-party-chain-v3" ‖ chain_{k-1} ‖ step u32 ‖ start u32 ‖ count u32 ‖
//	            in0 ‖ in1 ‖ out0 ‖ out1 ‖ prep ‖ peer sent ‖ peer received ‖
//	            state opened ‖ state masks)
func PartyChainNext(prev [32]byte, s *PartyStep) [32]byte {
	b := make([]byte, 0, 20+32+12+partyHashes*32)
	b = append(b, "unfed-party-chain-v3"...)
	b = append(b, prev[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(s.Step))
	b = binary.BigEndian.AppendUint32(b, uint32(s.Start))
	b = binary.BigEndian.AppendUint32(b, uint32(s.Count))
	return sha256.Sum256(s.appendHashes(b))
}

// PartyChain follows one party or dealer session's chain: the hop builds
// the commitments it signs with it, the client rebuilds them from the
// PARTY_COMMIT messages. Steps come in order from 0, each starting where
// the previous one ended.
type PartyChain struct {
	PartyBinding
	chain [32]byte
	step  int
	next  int
}

// NewPartyChain returns the chain of a fresh session bound to b.
func NewPartyChain(b PartyBinding) *PartyChain { return &PartyChain{PartyBinding: b} }

// Step reports the step the next commitment must be of.
func (c *PartyChain) Step() int { return c.step }

// Commitment returns the commitment of s (with s's signature, unchecked)
// and advances the chain. It reports false, advancing nothing, when s is
// not the next step or does not start where the previous one ended.
func (c *PartyChain) Commitment(s *PartyStep) (*PartyCommitment, bool) {
	if s.Step != c.step || s.Start != c.next || s.check() != nil {
		return nil, false
	}
	c.chain = PartyChainNext(c.chain, s)
	c.step++
	c.next = s.Start + s.Count
	return &PartyCommitment{PartyBinding: c.PartyBinding, PartyStep: *s, Chain: c.chain}, true
}

// StageStep is one stage's three commitments of one step.
type StageStep struct {
	D, A, B *PartyCommitment
}

// PartyMismatch is a failed crosswise check: the commitment of Role at
// stage Stage (from 0) disagrees with what it should equal: Role is the
// receiving side of the disagreeing pair (the party that committed to
// another input or PREP than its sender committed to, or to another output
// than the client received). Sender, when not 0, is the other signer of
// the pair, at stage SenderStage; 0 when the other side is the client (an
// MPC_INPUT sent, an MPC_OUTPUT received) or the commitment is wrong alone.
// One of the two lied, and which cannot be told from here (spec/11 §7.2).
type PartyMismatch struct {
	Stage       int
	Role        PartyRole
	SenderStage int
	Sender      PartyRole
	What        string
}

func (e *PartyMismatch) Error() string {
	return fmt.Sprintf("verify: stage %d %v: %s", e.Stage+1, e.Role, e.What)
}

// CheckParties checks one step's commitments of every stage crosswise
// (spec/11 §7.2): the first stage's inputs against inA and inB (the hashes
// of the MPC_INPUT bodies the client sent A_1 and B_1), every later
// stage's pieces against the previous stage's, every party's PREP against
// its dealer's, and the last stage's outputs against outA and outB (the
// hashes of the MPC_OUTPUT bodies received; zero when the step had none).
// Every commitment must be of the same step and positions. Signatures and
// chains are the caller's (PartyChain, Verify).
func CheckParties(st []StageStep, inA, inB, outA, outB [32]byte) error {
	var zero [32]byte
	if len(st) == 0 {
		return &PartyMismatch{What: "no stages"}
	}
	ref := st[0].A.PartyStep
	for i, s := range st {
		for _, c := range []*PartyCommitment{s.D, s.A, s.B} {
			if c.Step != ref.Step || c.Start != ref.Start || c.Count != ref.Count {
				return &PartyMismatch{Stage: i, Role: c.Role, What: fmt.Sprintf("step %d [%d,+%d), the others' %d [%d,+%d)",
					c.Step, c.Start, c.Count, ref.Step, ref.Start, ref.Count)}
			}
		}
		if s.D.In != [2][32]byte{} || s.D.Prep != zero || s.D.Peer != [2][32]byte{} {
			return &PartyMismatch{Stage: i, Role: Dealer, What: "dealer committed to an input"}
		}
		// The openings one party sent are the ones the other received:
		// MPC_PEER travels sealed under the pair key only the two share.
		const peer = "openings received are not the ones the other party committed to sending"
		if s.A.Peer[1] != s.B.Peer[0] {
			return &PartyMismatch{Stage: i, Role: PartyA, SenderStage: i, Sender: PartyB, What: peer}
		}
		if s.B.Peer[1] != s.A.Peer[0] {
			return &PartyMismatch{Stage: i, Role: PartyB, SenderStage: i, Sender: PartyA, What: peer}
		}
		// Both parties append the same opened cache rows, and each the
		// mask shares its dealer dealt it.
		if s.A.State[0] != s.B.State[0] {
			return &PartyMismatch{Stage: i, Role: PartyA, SenderStage: i, Sender: PartyB,
				What: "opened cache rows are not the ones the other party committed to"}
		}
		const masks = "cache mask rows are not the ones its dealer committed to"
		if s.A.State[1] != s.D.State[0] {
			return &PartyMismatch{Stage: i, Role: PartyA, SenderStage: i, Sender: Dealer, What: masks}
		}
		if s.B.State[1] != s.D.State[1] {
			return &PartyMismatch{Stage: i, Role: PartyB, SenderStage: i, Sender: Dealer, What: masks}
		}
		const prep = "PREP is not the one its dealer committed to"
		if s.A.Prep != s.D.Out[0] {
			return &PartyMismatch{Stage: i, Role: PartyA, SenderStage: i, Sender: Dealer, What: prep}
		}
		if s.B.Prep != s.D.Out[1] {
			return &PartyMismatch{Stage: i, Role: PartyB, SenderStage: i, Sender: Dealer, What: prep}
		}
		if i == 0 {
			const what = "input is not the MPC_INPUT sent"
			if s.A.In != [2][32]byte{inA, zero} {
				return &PartyMismatch{Stage: i, Role: PartyA, What: what}
			}
			if s.B.In != [2][32]byte{inB, zero} {
				return &PartyMismatch{Stage: i, Role: PartyB, What: what}
			}
			continue
		}
		// Channel 0 comes from the same side, channel 1 from the other.
		p := st[i-1]
		for _, e := range []struct {
			got, want  [32]byte
			role, from PartyRole
			ch         int
		}{
			{s.A.In[0], p.A.Out[0], PartyA, PartyA, 0}, {s.A.In[1], p.B.Out[1], PartyA, PartyB, 1},
			{s.B.In[0], p.B.Out[0], PartyB, PartyB, 0}, {s.B.In[1], p.A.Out[1], PartyB, PartyA, 1},
		} {
			if e.got != e.want {
				return &PartyMismatch{Stage: i, Role: e.role, SenderStage: i - 1, Sender: e.from,
					What: fmt.Sprintf("input piece on channel %d is not the one %v of stage %d committed to", e.ch, e.from, i)}
			}
		}
	}
	l := st[len(st)-1]
	if l.A.Out != [2][32]byte{outA, zero} {
		return &PartyMismatch{Stage: len(st) - 1, Role: PartyA, What: "output is not the MPC_OUTPUT received"}
	}
	if l.B.Out != [2][32]byte{outB, zero} {
		return &PartyMismatch{Stage: len(st) - 1, Role: PartyB, What: "output is not the MPC_OUTPUT received"}
	}
	return nil
}

// PeerHasher computes PeerHash, the hash of one step's MPC_PEER bodies in
// the order they were sent or received (spec/11 §7.1):
//
//	SHA-256("unfed-party-peer-v1" ‖ (len u32 ‖ body) for each body)
//
// The zero value is ready; Reset starts the next step.
type PeerHasher struct {
	h   hash.Hash
	len [4]byte
}

// Write adds one MPC_PEER body.
func (p *PeerHasher) Write(body []byte) {
	if p.h == nil {
		p.Reset()
	}
	binary.BigEndian.PutUint32(p.len[:], uint32(len(body)))
	p.h.Write(p.len[:])
	p.h.Write(body)
}

// Sum returns the hash of the bodies written since the last Reset.
func (p *PeerHasher) Sum() (s [32]byte) {
	if p.h == nil {
		p.Reset()
	}
	p.h.Sum(s[:0])
	return s
}

// Reset forgets the bodies written.
func (p *PeerHasher) Reset() {
	if p.h == nil {
		p.h = sha256.New()
	}
	p.h.Reset()
	p.h.Write([]byte("unfed-party-peer-v1"))
}

// PeerHash is PeerHasher's value over bodies.
func PeerHash(bodies [][]byte) [32]byte {
	var p PeerHasher
	for _, b := range bodies {
		p.Write(b)
	}
	return p.Sum()
}

// BodyHash is H of a message body as party commitments hash it: BLAKE3-256
// (spec 11 §7.1), or zero for no body (nil). Every PREP is hashed twice, by
// its dealer and its party, and PREPs are most of a confidential step's
// bytes: SHA-256 took a fifth of a dealer's CPU, BLAKE3's SIMD tree hash a
// third to a quarter of that.
func BodyHash(b []byte) [32]byte {
	if b == nil {
		return [32]byte{}
	}
	return blake3.Sum256(b)
}

// BodyHashParts is BodyHash of the concatenation of parts (a body that
// arrived in fragments), without joining them; no parts hash as no body.
func BodyHashParts(parts [][]byte) [32]byte {
	switch len(parts) {
	case 0:
		return [32]byte{}
	case 1:
		return BodyHash(parts[0])
	}
	h := blake3.New(32, nil)
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
