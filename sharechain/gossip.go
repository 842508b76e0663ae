package sharechain

// Gossip messages between nodes (spec 12 §5.4): a frame is
//
//	type u8 | length u32 | payload
//
// BLOCK carries a block's encoding, GET_BLOCK a 32-byte block id. The codec
// is pure; node.go decides what to do with a frame.

import (
	"encoding/binary"
	"fmt"
)

// Gossip message types.
const (
	MsgBlock    = 1
	MsgGetBlock = 2
)

// MaxGossipFrame bounds a frame.
const MaxGossipFrame = 5 + MaxBlockLen

// GossipMsg is a decoded frame.
type GossipMsg struct {
	Type    uint8
	Block   *Block  // MsgBlock
	BlockID BlockID // MsgGetBlock
}

// EncodeGossip frames a message.
func EncodeGossip(typ uint8, payload []byte) []byte {
	out := make([]byte, 0, 5+len(payload))
	out = append(out, typ)
	out = binary.BigEndian.AppendUint32(out, uint32(len(payload)))
	return append(out, payload...)
}

// ParseGossip decodes one frame, which must be the whole input.
func ParseGossip(b []byte) (GossipMsg, error) {
	if len(b) < 5 {
		return GossipMsg{}, fmt.Errorf("sharechain: gossip frame of %d bytes", len(b))
	}
	if len(b) > MaxGossipFrame {
		return GossipMsg{}, fmt.Errorf("sharechain: gossip frame of %d bytes exceeds %d", len(b), MaxGossipFrame)
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if uint64(n) != uint64(len(b)-5) {
		return GossipMsg{}, fmt.Errorf("sharechain: gossip length %d, %d bytes follow", n, len(b)-5)
	}
	m := GossipMsg{Type: b[0]}
	p := b[5:]
	switch m.Type {
	case MsgBlock:
		blk, err := ParseBlock(p)
		if err != nil {
			return GossipMsg{}, err
		}
		m.Block = blk
	case MsgGetBlock:
		if len(p) != 32 {
			return GossipMsg{}, fmt.Errorf("sharechain: GET_BLOCK of %d bytes", len(p))
		}
		copy(m.BlockID[:], p)
	default:
		return GossipMsg{}, fmt.Errorf("sharechain: unknown gossip type %d", m.Type)
	}
	return m, nil
}

// SplitGossip cuts concatenated frames (the body of a gossip reply) apart,
// at most max of them.
func SplitGossip(b []byte, max int) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(out) == max {
			return nil, fmt.Errorf("sharechain: more than %d gossip frames", max)
		}
		if len(b) < 5 {
			return nil, fmt.Errorf("sharechain: truncated gossip frame")
		}
		n := uint64(binary.BigEndian.Uint32(b[1:5]))
		if n > uint64(len(b)-5) || n+5 > MaxGossipFrame {
			return nil, fmt.Errorf("sharechain: gossip frame of %d bytes, %d follow", n, len(b)-5)
		}
		out = append(out, b[:5+n])
		b = b[5+n:]
	}
	return out, nil
}
