package verify

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Commitment is a compute hop's signed statement about one step of one
// session (spec/11 §2.1): on the input with hash In (and the session's
// earlier inputs, bound by InChain) the layers [First, Last) of ModelID at
// positions [Start, Start+Count) gave the output with hash Out, and the
// session's steps so far gave the outputs bound by OutChain. Nonce is the
// client's per-session nonce; Identity the hop's Ed25519 identity key. So
// the last step's commitment alone, one signature, binds every input and
// every output of the session: a ticket needs no other (spec/11 §3.2).
//
// Encoding (spec/11 §2.1):
//
//	version   u8   2
//	id len    u8   1..128
//	model id  id len
//	first     u16
//	last      u16
//	start     u32
//	count     u32  ≥ 1
//	in kind   u8   Kind
//	out kind  u8   Kind
//	nonce     32
//	in chain  32
//	in        32
//	out       32
//	out chain 32
//	identity  32
//	signature 64   Ed25519 over "unfed-commit-v2" || every byte above
type Commitment struct {
	ModelID  string
	First    int
	Last     int
	Start    int
	Count    int
	InKind   Kind
	OutKind  Kind
	Nonce    [32]byte
	InChain  [32]byte
	In       [32]byte
	Out      [32]byte
	OutChain [32]byte
	Identity [32]byte
	Sig      [64]byte
}

// CommitContext is the domain separation string of commitment signatures.
const CommitContext = "unfed-commit-v2"

// Limits.
const (
	commitVersion = 2
	// MaxModelID is the longest model id (spec/03 §3.10).
	MaxModelID = 128
	// MaxPositions bounds start+count (spec/03 §3.10's 2^24).
	MaxPositions = 1 << 24
	commitFixed  = 1 + 1 + 2 + 2 + 4 + 4 + 1 + 1 + 6*32 + 64
)

// ErrMalformed is wrapped by every decoding error of this package.
var ErrMalformed = errors.New("verify: malformed")

func malformed(what, format string, args ...any) error {
	return fmt.Errorf("%w %s: %s", ErrMalformed, what, fmt.Sprintf(format, args...))
}

// appendBody appends the signed part of the encoding.
func (c *Commitment) appendBody(dst []byte) []byte {
	dst = append(dst, commitVersion, byte(len(c.ModelID)))
	dst = append(dst, c.ModelID...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.First))
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.Last))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Start))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Count))
	dst = append(dst, byte(c.InKind), byte(c.OutKind))
	dst = append(dst, c.Nonce[:]...)
	dst = append(dst, c.InChain[:]...)
	dst = append(dst, c.In[:]...)
	dst = append(dst, c.Out[:]...)
	dst = append(dst, c.OutChain[:]...)
	return append(dst, c.Identity[:]...)
}

// Append appends the encoding, signature included.
func (c *Commitment) Append(dst []byte) []byte {
	dst = c.appendBody(dst)
	return append(dst, c.Sig[:]...)
}

// signed returns the bytes the signature covers.
func (c *Commitment) signed() []byte {
	return c.appendBody([]byte(CommitContext))
}

// Signer signs with a relay's identity key (relay/keys.Identity).
type Signer interface {
	Sign(msg []byte) []byte
}

// Sign sets Identity to pub and signs the commitment with s, the private
// half of pub.
func (c *Commitment) Sign(s Signer, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("verify: identity key of %d bytes", len(pub))
	}
	copy(c.Identity[:], pub)
	copy(c.Sig[:], s.Sign(c.signed()))
	return nil
}

// Verify reports whether the signature is Identity's over the commitment.
func (c *Commitment) Verify() bool {
	return ed25519.Verify(ed25519.PublicKey(c.Identity[:]), c.signed(), c.Sig[:])
}

// ID names the commitment: SHA-256 of its encoding. Authorities remember the
// IDs of the proofs they have judged, so a replayed proof costs a lookup.
func (c *Commitment) ID() [32]byte {
	return sha256.Sum256(c.Append(nil))
}

// check enforces the field constraints that do not need a key.
func (c *Commitment) check() error {
	switch {
	case len(c.ModelID) == 0 || len(c.ModelID) > MaxModelID:
		return malformed("commitment", "model id of %d bytes", len(c.ModelID))
	case c.First < 0 || c.First >= c.Last || c.Last > 0xffff:
		return malformed("commitment", "layer range [%d,%d)", c.First, c.Last)
	case c.Count < 1 || c.Start < 0 || c.Start+c.Count > MaxPositions:
		return malformed("commitment", "positions [%d,+%d)", c.Start, c.Count)
	case !c.InKind.valid() || c.InKind.last():
		return malformed("commitment", "input kind %d", c.InKind)
	case !c.OutKind.valid() || c.OutKind == KindTokens:
		return malformed("commitment", "output kind %d", c.OutKind)
	case c.InKind == KindTokens && c.First != 0:
		// Layer 0 may also take rows (a client that embeds, spec/11 §2.2).
		return malformed("commitment", "input %v at layer %d", c.InKind, c.First)
	}
	return nil
}

// DecodeCommitment parses an encoded commitment; it does not verify the
// signature (Verify does). Trailing bytes are an error.
func DecodeCommitment(b []byte) (*Commitment, error) {
	if len(b) < commitFixed+1 {
		return nil, malformed("commitment", "%d bytes", len(b))
	}
	if b[0] != commitVersion {
		return nil, malformed("commitment", "version %d", b[0])
	}
	n := int(b[1])
	if len(b) != commitFixed+n {
		return nil, malformed("commitment", "%d bytes with a model id of %d", len(b), n)
	}
	c := &Commitment{ModelID: string(b[2 : 2+n])}
	p := b[2+n:]
	c.First = int(binary.BigEndian.Uint16(p))
	c.Last = int(binary.BigEndian.Uint16(p[2:]))
	c.Start = int(binary.BigEndian.Uint32(p[4:]))
	c.Count = int(binary.BigEndian.Uint32(p[8:]))
	c.InKind, c.OutKind = Kind(p[12]), Kind(p[13])
	p = p[14:]
	for _, f := range [][]byte{c.Nonce[:], c.InChain[:], c.In[:], c.Out[:], c.OutChain[:], c.Identity[:], c.Sig[:]} {
		p = p[copy(f, p):]
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// Step is the per-step part of a commitment that a hop sends its client
// in a COMMIT message (spec/11 §2.4); the client knows the rest (model id,
// range, kinds, nonce, identity) and recomputes the input and output
// chains from the In and Out of the hop's earlier steps.
//
//	start u32 ‖ count u32 ‖ in 32 ‖ out 32 ‖ signature 64   (136 bytes)
type Step struct {
	Start int
	Count int
	In    [32]byte
	Out   [32]byte
	Sig   [64]byte
}

// StepSize is the encoded size of a Step.
const StepSize = 4 + 4 + 32 + 32 + 64

// Append appends the encoding.
func (s *Step) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(s.Start))
	dst = binary.BigEndian.AppendUint32(dst, uint32(s.Count))
	dst = append(dst, s.In[:]...)
	dst = append(dst, s.Out[:]...)
	return append(dst, s.Sig[:]...)
}

// DecodeStep parses exactly StepSize bytes.
func DecodeStep(b []byte) (*Step, error) {
	if len(b) != StepSize {
		return nil, malformed("step", "%d bytes", len(b))
	}
	s := &Step{Start: int(binary.BigEndian.Uint32(b)), Count: int(binary.BigEndian.Uint32(b[4:]))}
	if s.Count < 1 || uint64(s.Start)+uint64(s.Count) > MaxPositions {
		return nil, malformed("step", "positions [%d,+%d)", s.Start, s.Count)
	}
	copy(s.In[:], b[8:])
	copy(s.Out[:], b[40:])
	copy(s.Sig[:], b[72:])
	return s, nil
}
