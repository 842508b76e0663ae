package mpc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/unfed/unfed/compute/mpc/dpf"
)

// Message layouts (spec §5). All integers big-endian.

// Version is the protocol version carried in every message.
const Version = 12

// Message kinds.
const (
	kindStep   = 1 // client -> party: the token of one step (online)
	kindPeer   = 2 // party <-> party
	kindOutput = 3 // party -> S1
	kindPrep   = 4 // client -> party: a step's correlated randomness (offline)
)

// Errors that abort a step. Callers branch on them with errors.Is; the
// party's state is unchanged after any of them (spec §8).
var (
	// ErrMalformed: a message does not parse or its sizes do not match the
	// circuit.
	ErrMalformed = errors.New("mpc: malformed message")
	// ErrVersion: unsupported protocol version.
	ErrVersion = errors.New("mpc: unsupported version")
	// ErrMismatch: role, configuration, step counter or position disagree
	// with the party's state.
	ErrMismatch = errors.New("mpc: message does not match session state")
	// ErrContextFull: the dealer has dealt every position of its context.
	ErrContextFull = errors.New("mpc: context full")
)

// stepMsg is the client's message to one party for one step: the PREP
// message (kind 4) carries the correlated randomness, sent before the token
// is known; the STEP message (kind 1) carries the token's DPF key.
type stepMsg struct {
	version  byte // 0: Version
	rows     byte // StageVersion PREP: the step's positions (1..255); else 0
	kind     byte
	role     byte
	cfgHash  [8]byte
	step     uint32
	pos      uint32
	tokenKey []byte // STEP
	seed     []byte // PREP, role A: 16 bytes
	shares   []byte // PREP, role B: 8*n bytes
	keys     []byte // PREP: concatenated LUT DPF keys
}

const stepHeader = 20

func (m *stepMsg) encode() []byte {
	b := make([]byte, stepHeader, stepHeader+2+len(m.tokenKey)+4+len(m.seed)+len(m.shares)+4+len(m.keys))
	m.putHeader(b)
	if m.kind == kindStep {
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.tokenKey)))
		return append(b, m.tokenKey...)
	}
	if m.role == 0 {
		b = append(b, m.seed...)
	} else {
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.shares)))
		b = append(b, m.shares...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.keys)))
	return append(b, m.keys...)
}

// putHeader writes the message header into b[:stepHeader].
func (m *stepMsg) putHeader(b []byte) {
	v := m.version
	if v == 0 {
		v = Version
	}
	b[0], b[1], b[2], b[3] = v, m.kind, m.role, m.rows
	copy(b[4:12], m.cfgHash[:])
	binary.BigEndian.PutUint32(b[12:], m.step)
	binary.BigEndian.PutUint32(b[16:], m.pos)
}

// IsPrep reports whether msg is a PREP message (spec §5.1): a step's
// correlated randomness, which a party takes with Party.Prep, rather than
// its token, which it takes with Party.Step.
func IsPrep(msg []byte) bool { return len(msg) >= 2 && msg[1] == kindPrep }

// PrepRows returns the positions of the step a stage's PREP message is for
// (header byte 3, spec/10 §4.1), or an error for anything else. It reads
// only the header: the party checks the rest when it takes the PREP.
func PrepRows(msg []byte) (int, error) {
	if len(msg) < stepHeader || msg[0] != StageVersion || msg[1] != kindPrep || msg[3] == 0 {
		return 0, fmt.Errorf("%w: not a stage PREP", ErrMalformed)
	}
	return int(msg[3]), nil
}

// PrepStageHash returns the stage hash a stage PREP message names (header
// bytes 4..11), or an error for anything else. It reads only the header.
func PrepStageHash(msg []byte) ([8]byte, error) {
	var h [8]byte
	if _, err := PrepRows(msg); err != nil {
		return h, err
	}
	copy(h[:], msg[4:12])
	return h, nil
}

// decodeStepMsg parses a STEP or PREP message, as kind requires.
func decodeStepMsg(b []byte, kind byte) (*stepMsg, error) {
	return decodeStepMsgV(b, kind, Version)
}

// decodeStepMsgV is decodeStepMsg for messages of protocol version v (the
// entry stage's Version, or StageVersion).
func decodeStepMsgV(b []byte, kind byte, v byte) (*stepMsg, error) {
	if len(b) < stepHeader {
		return nil, fmt.Errorf("%w: client message of %d bytes", ErrMalformed, len(b))
	}
	m, err := decodeStepHeader(b[:stepHeader], kind, v)
	if err != nil {
		return nil, err
	}
	p := b[stepHeader:]
	if kind == kindStep {
		if len(p) < 2 {
			return nil, fmt.Errorf("%w: token key truncated", ErrMalformed)
		}
		n := int(binary.BigEndian.Uint16(p))
		if len(p)-2 != n {
			return nil, fmt.Errorf("%w: token key of %d bytes, header says %d", ErrMalformed, len(p)-2, n)
		}
		m.tokenKey = p[2:]
		return m, nil
	}
	if m.role == 0 {
		if len(p) < 16 {
			return nil, fmt.Errorf("%w: seed truncated", ErrMalformed)
		}
		m.seed, p = p[:16], p[16:]
	} else {
		if len(p) < 4 {
			return nil, fmt.Errorf("%w: shares truncated", ErrMalformed)
		}
		n := binary.BigEndian.Uint32(p)
		p = p[4:]
		if uint64(len(p)) < uint64(n) || n%8 != 0 {
			return nil, fmt.Errorf("%w: shares truncated", ErrMalformed)
		}
		m.shares, p = p[:n], p[n:]
	}
	if len(p) < 4 {
		return nil, fmt.Errorf("%w: keys truncated", ErrMalformed)
	}
	n32 := binary.BigEndian.Uint32(p)
	p = p[4:]
	if uint64(len(p)) != uint64(n32) {
		return nil, fmt.Errorf("%w: key section of %d bytes, header says %d", ErrMalformed, len(p), n32)
	}
	m.keys = p
	return m, nil
}

// decodeStepHeader checks the stepHeader bytes b of a STEP or PREP message
// of protocol version v and returns the message with its header's fields.
func decodeStepHeader(b []byte, kind byte, v byte) (*stepMsg, error) {
	if b[0] != v {
		return nil, fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	// Byte 3 is reserved (0) in the entry stage's messages and the step's rows in a stage's
	// PREP (spec/10 §4.1).
	if b[1] != kind || b[2] > 1 || (v == StageVersion) != (b[3] != 0) {
		return nil, fmt.Errorf("%w: client message header (kind %d, want %d; byte 3 %d)", ErrMalformed, b[1], kind, b[3])
	}
	m := &stepMsg{version: v, kind: kind, role: b[2], rows: b[3]}
	copy(m.cfgHash[:], b[4:12])
	m.step = binary.BigEndian.Uint32(b[12:])
	m.pos = binary.BigEndian.Uint32(b[16:])
	return m, nil
}

// decodePrepParts is decodeStepMsgV for a stage PREP cut into pieces: the
// seed or shares are read from them (copied where they straddle two) and
// the key section is left in place: it returns the message (keys nil), the
// key section's length and its pieces.
func decodePrepParts(parts [][]byte) (*stepMsg, int, [][]byte, error) {
	c := dpf.NewCursor(parts)
	total := c.Len()
	hdr := c.Take(stepHeader)
	if hdr == nil {
		return nil, 0, nil, fmt.Errorf("%w: client message of %d bytes", ErrMalformed, total)
	}
	m, err := decodeStepHeader(hdr, kindPrep, StageVersion)
	if err != nil {
		return nil, 0, nil, err
	}
	if m.role == 0 {
		if m.seed = c.Take(16); m.seed == nil {
			return nil, 0, nil, fmt.Errorf("%w: seed truncated", ErrMalformed)
		}
	} else {
		nb := c.Take(4)
		if nb == nil {
			return nil, 0, nil, fmt.Errorf("%w: shares truncated", ErrMalformed)
		}
		n := binary.BigEndian.Uint32(nb)
		if uint64(c.Len()) < uint64(n) || n%8 != 0 {
			return nil, 0, nil, fmt.Errorf("%w: shares truncated", ErrMalformed)
		}
		m.shares = c.Take(int(n))
	}
	nb := c.Take(4)
	if nb == nil {
		return nil, 0, nil, fmt.Errorf("%w: keys truncated", ErrMalformed)
	}
	n32 := binary.BigEndian.Uint32(nb)
	if uint64(c.Len()) != uint64(n32) {
		return nil, 0, nil, fmt.Errorf("%w: key section of %d bytes, header says %d", ErrMalformed, c.Len(), n32)
	}
	return m, int(n32), c.Rest(), nil
}

// decodeTokenKey parses the token's DPF key and checks it against the vocabulary.
func decodeTokenKey(b []byte, vocab int, party int) (dpf.Key, error) {
	k, rest, err := dpf.Decode(b)
	if err != nil {
		return dpf.Key{}, fmt.Errorf("%w: token key: %w", ErrMalformed, err)
	}
	if len(rest) != 0 || k.Cmp || k.Elems != 0 || k.Bits != dpf.BitsFor(vocab) || int(k.Party) != party {
		return dpf.Key{}, fmt.Errorf("%w: token key does not fit vocabulary or role", ErrMalformed)
	}
	return k, nil
}

const peerHeader = 12

func encodePeer(v byte, step uint32, round uint16, vals []uint64) []byte {
	b := make([]byte, 0, peerHeader+8*len(vals))
	b = append(b, v, kindPeer)
	b = binary.BigEndian.AppendUint16(b, round)
	b = binary.BigEndian.AppendUint32(b, step)
	b = binary.BigEndian.AppendUint32(b, uint32(len(vals)))
	for _, v := range vals {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// decodePeer checks a peer message against the expected step, round and count.
func decodePeer(b []byte, v byte, step uint32, round uint16, count int) ([]uint64, error) {
	if len(b) < peerHeader {
		return nil, fmt.Errorf("%w: peer message of %d bytes", ErrMalformed, len(b))
	}
	if b[0] != v {
		return nil, fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	if b[1] != kindPeer {
		return nil, fmt.Errorf("%w: peer message kind %d", ErrMalformed, b[1])
	}
	if r, s := binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint32(b[4:]); r != round || s != step {
		return nil, fmt.Errorf("%w: peer at step %d round %d, want %d/%d", ErrMismatch, s, r, step, round)
	}
	n := binary.BigEndian.Uint32(b[8:])
	if uint64(n) != uint64(count) || len(b)-peerHeader != 8*count {
		return nil, fmt.Errorf("%w: peer sent %d values, want %d", ErrMalformed, n, count)
	}
	out := make([]uint64, count)
	for i := range out {
		out[i] = binary.BigEndian.Uint64(b[peerHeader+8*i:])
	}
	return out, nil
}
