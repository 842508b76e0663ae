package hop

import (
	"encoding/binary"

	"github.com/unfed/unfed/relay/verify"
)

// The verification messages of spec/11-verification.md §2.4 and §3.1:
//
//	0x08 COMMIT_ON  client → compute hop  nonce 32
//	0x09 REVEAL     client → compute hop  start u32 ‖ count u32
//	0x85 COMMIT     compute hop → client  a verify.Step (136 bytes)
//	0x86 REVEALED   compute hop → client  an ACTIVATIONS body (spec §4.2)
//	0x8a PARTY_COMMIT party or dealer → client  a verify.PartyStep (364 bytes, spec §7.2)
//
// Decode parses them (decodeVerifyMsg); commit.go runs them.

// Message types of spec/11.
const (
	TypeCommitOn MsgType = 0x0a
	TypeReveal   MsgType = 0x0b
	TypeCommit   MsgType = 0x87
	TypeRevealed MsgType = 0x88
	// TypePartyCommit is a confidential party's or dealer's commitment to
	// one step (spec/11 §7.2).
	TypePartyCommit MsgType = 0x8a
)

// CommitOn asks a compute hop, before its first input, to commit to every
// step of the session under the client's per-session Nonce.
type CommitOn struct {
	Nonce [32]byte
}

// Type implements Msg.
func (*CommitOn) Type() MsgType { return TypeCommitOn }

// Append implements Msg.
func (m *CommitOn) Append(dst []byte) []byte {
	return append(append(dst, byte(TypeCommitOn)), m.Nonce[:]...)
}

// Reveal asks a compute hop that is not the last for the output rows it
// sent for positions [Start, Start+Count) of a committed session.
type Reveal struct {
	Start int
	Count int
}

// Type implements Msg.
func (*Reveal) Type() MsgType { return TypeReveal }

// Append implements Msg.
func (m *Reveal) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeReveal))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Start))
	return binary.BigEndian.AppendUint32(dst, uint32(m.Count))
}

// Commit is a hop's commitment to one step.
type Commit struct {
	verify.Step
}

// Type implements Msg.
func (*Commit) Type() MsgType { return TypeCommit }

// Append implements Msg.
func (m *Commit) Append(dst []byte) []byte {
	return m.Step.Append(append(dst, byte(TypeCommit)))
}

// Revealed carries output rows a REVEAL asked for, in the hop's output
// dtype, as an ACTIVATIONS body; FINAL marks the last of the answer.
type Revealed struct {
	Activations
}

// Type implements Msg.
func (*Revealed) Type() MsgType { return TypeRevealed }

// Append implements Msg.
func (m *Revealed) Append(dst []byte) []byte {
	n := len(dst)
	dst = m.Activations.Append(dst)
	dst[n] = byte(TypeRevealed)
	return dst
}

// PartyCommit is a party's or dealer's commitment to one step of a
// confidential session.
type PartyCommit struct {
	verify.PartyStep
}

// Type implements Msg.
func (*PartyCommit) Type() MsgType { return TypePartyCommit }

// Append implements Msg.
func (m *PartyCommit) Append(dst []byte) []byte {
	return m.PartyStep.Append(append(dst, byte(TypePartyCommit)))
}

func decodeVerifyMsg(t MsgType, b []byte) (Msg, error) {
	switch t {
	case TypeCommitOn:
		if len(b) != 33 {
			return nil, malformed(t, "%d bytes", len(b))
		}
		m := &CommitOn{}
		copy(m.Nonce[:], b[1:])
		return m, nil
	case TypeReveal:
		if len(b) != 9 {
			return nil, malformed(t, "%d bytes", len(b))
		}
		m := &Reveal{Start: int(binary.BigEndian.Uint32(b[1:])), Count: int(binary.BigEndian.Uint32(b[5:]))}
		if m.Count < 1 || uint64(m.Start)+uint64(m.Count) > MaxContextField {
			return nil, malformed(t, "positions [%d,+%d)", m.Start, m.Count)
		}
		return m, nil
	case TypeCommit:
		s, err := verify.DecodeStep(b[1:])
		if err != nil {
			return nil, malformed(t, "%v", err)
		}
		return &Commit{Step: *s}, nil
	case TypePartyCommit:
		s, err := verify.DecodePartyStep(b[1:])
		if err != nil {
			return nil, malformed(t, "%v", err)
		}
		return &PartyCommit{PartyStep: *s}, nil
	case TypeRevealed:
		a, err := decodeActivations(b)
		if err != nil {
			return nil, malformed(t, "%v", err)
		}
		return &Revealed{Activations: *a}, nil
	}
	return nil, nil
}
