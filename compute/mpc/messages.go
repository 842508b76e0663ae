package mpc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/unfed/unfed/compute/mpc/dpf"
)

// Message layouts (spec §5). All integers big-endian.

// Version is the protocol version carried in every message.
const Version = 3

// Message kinds.
const (
	kindStep   = 1 // client -> party
	kindPeer   = 2 // party <-> party
	kindOutput = 3 // party -> S1
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
)

// stepMsg is the client's message to one party for one token.
type stepMsg struct {
	role     byte
	cfgHash  [8]byte
	step     uint32
	pos      uint32
	tokenKey []byte
	seed     []byte // role A: 16 bytes
	shares   []byte // role B: 8*n bytes
	keys     []byte // concatenated LUT DPF keys
}

const stepHeader = 20

func (m *stepMsg) encode() []byte {
	b := make([]byte, 0, stepHeader+2+len(m.tokenKey)+4+len(m.seed)+len(m.shares)+4+len(m.keys))
	b = append(b, Version, kindStep, m.role, 0)
	b = append(b, m.cfgHash[:]...)
	b = binary.BigEndian.AppendUint32(b, m.step)
	b = binary.BigEndian.AppendUint32(b, m.pos)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.tokenKey)))
	b = append(b, m.tokenKey...)
	if m.role == 0 {
		b = append(b, m.seed...)
	} else {
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.shares)))
		b = append(b, m.shares...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.keys)))
	return append(b, m.keys...)
}

func decodeStep(b []byte) (*stepMsg, error) {
	if len(b) < stepHeader+2 {
		return nil, fmt.Errorf("%w: step message of %d bytes", ErrMalformed, len(b))
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	if b[1] != kindStep || b[2] > 1 || b[3] != 0 {
		return nil, fmt.Errorf("%w: step header", ErrMalformed)
	}
	m := &stepMsg{role: b[2]}
	copy(m.cfgHash[:], b[4:12])
	m.step = binary.BigEndian.Uint32(b[12:])
	m.pos = binary.BigEndian.Uint32(b[16:])
	p := b[stepHeader:]
	n := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if len(p) < n {
		return nil, fmt.Errorf("%w: token key truncated", ErrMalformed)
	}
	m.tokenKey, p = p[:n], p[n:]
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

// decodeTokenKey parses the token's DPF key and checks it against the vocabulary.
func decodeTokenKey(b []byte, vocab int, party int) (dpf.Key, error) {
	k, rest, err := dpf.Decode(b)
	if err != nil {
		return dpf.Key{}, fmt.Errorf("%w: token key: %w", ErrMalformed, err)
	}
	if len(rest) != 0 || k.Bits != dpf.BitsFor(vocab) || int(k.Party) != party {
		return dpf.Key{}, fmt.Errorf("%w: token key does not fit vocabulary or role", ErrMalformed)
	}
	return k, nil
}

const peerHeader = 12

func encodePeer(step uint32, round uint16, vals []uint64) []byte {
	b := make([]byte, 0, peerHeader+8*len(vals))
	b = append(b, Version, kindPeer)
	b = binary.BigEndian.AppendUint16(b, round)
	b = binary.BigEndian.AppendUint32(b, step)
	b = binary.BigEndian.AppendUint32(b, uint32(len(vals)))
	for _, v := range vals {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// decodePeer checks a peer message against the expected step, round and count.
func decodePeer(b []byte, step uint32, round uint16, count int) ([]uint64, error) {
	if len(b) < peerHeader {
		return nil, fmt.Errorf("%w: peer message of %d bytes", ErrMalformed, len(b))
	}
	if b[0] != Version {
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
