package sharechain

// Link gossip messages (spec 12 §5.5): what relays send each other in
// GOSSIP cells on their links (02-circuit §2.5). One message is one cell
// payload:
//
//	INV        type 1 | count u8 (1..MaxInv)     | count × 32-byte block id
//	GETDATA    type 2 | count u8 (1..MaxGetData) | count × 32-byte block id
//	BLOCK_PART type 3 | id 32 | total u32 | offset u32 | data
//
// A block travels as BLOCK_PARTs in order, each carrying the next bytes of
// its encoding. The codec is pure; linkgossip.go decides what to do.

import (
	"encoding/binary"
	"fmt"

	"github.com/unfed/unfed/relay/cell"
)

// Link gossip message types.
const (
	LinkInv       = 1
	LinkGetData   = 2
	LinkBlockPart = 3
)

// Link gossip limits.
const (
	// MaxInv bounds the ids of one INV.
	MaxInv = 64
	// MaxGetData bounds the ids of one GETDATA.
	MaxGetData = 16
	// MaxLinkMsg is the largest message: a large cell's payload.
	MaxLinkMsg = cell.MaxPayload
	// partHead is a BLOCK_PART's header.
	partHead = 1 + 32 + 4 + 4
	// MaxPartData is the most block bytes one BLOCK_PART carries.
	MaxPartData = MaxLinkMsg - partHead
)

// LinkMsg is a decoded link gossip message.
type LinkMsg struct {
	Type uint8
	IDs  []BlockID // INV, GETDATA; the part's block for BLOCK_PART
	// BLOCK_PART only.
	Total, Offset uint32
	Data          []byte
}

// EncodeIDs returns an INV or GETDATA (typ) of ids, which must number
// 1..MaxInv (INV) or 1..MaxGetData (GETDATA).
func EncodeIDs(typ uint8, ids []BlockID) []byte {
	out := make([]byte, 0, 2+32*len(ids))
	out = append(out, typ, byte(len(ids)))
	for _, id := range ids {
		out = append(out, id[:]...)
	}
	return out
}

// EncodeParts cuts a block's encoding into BLOCK_PARTs.
func EncodeParts(id BlockID, raw []byte) [][]byte {
	var out [][]byte
	for off := 0; off < len(raw); off += MaxPartData {
		end := min(off+MaxPartData, len(raw))
		m := make([]byte, 0, partHead+end-off)
		m = append(m, LinkBlockPart)
		m = append(m, id[:]...)
		m = binary.BigEndian.AppendUint32(m, uint32(len(raw)))
		m = binary.BigEndian.AppendUint32(m, uint32(off))
		out = append(out, append(m, raw[off:end]...))
	}
	return out
}

// ParseLinkMsg decodes one message, which must be the whole input.
func ParseLinkMsg(b []byte) (LinkMsg, error) {
	if len(b) < 2 {
		return LinkMsg{}, fmt.Errorf("sharechain: link message of %d bytes", len(b))
	}
	if len(b) > MaxLinkMsg {
		return LinkMsg{}, fmt.Errorf("sharechain: link message of %d bytes exceeds %d", len(b), MaxLinkMsg)
	}
	m := LinkMsg{Type: b[0]}
	switch m.Type {
	case LinkInv, LinkGetData:
		n, limit := int(b[1]), MaxInv
		if m.Type == LinkGetData {
			limit = MaxGetData
		}
		if n < 1 || n > limit {
			return LinkMsg{}, fmt.Errorf("sharechain: link message type %d with %d ids, want 1..%d", m.Type, n, limit)
		}
		if len(b) != 2+32*n {
			return LinkMsg{}, fmt.Errorf("sharechain: link message type %d of %d bytes for %d ids", m.Type, len(b), n)
		}
		m.IDs = make([]BlockID, n)
		for i := range m.IDs {
			copy(m.IDs[i][:], b[2+32*i:])
		}
	case LinkBlockPart:
		if len(b) <= partHead {
			return LinkMsg{}, fmt.Errorf("sharechain: BLOCK_PART of %d bytes", len(b))
		}
		var id BlockID
		copy(id[:], b[1:33])
		m.IDs = []BlockID{id}
		m.Total = binary.BigEndian.Uint32(b[33:37])
		m.Offset = binary.BigEndian.Uint32(b[37:41])
		m.Data = b[partHead:]
		if m.Total > MaxBlockLen || uint64(m.Offset)+uint64(len(m.Data)) > uint64(m.Total) {
			return LinkMsg{}, fmt.Errorf("sharechain: BLOCK_PART of bytes %d..%d of %d (at most %d)", m.Offset, uint64(m.Offset)+uint64(len(m.Data)), m.Total, MaxBlockLen)
		}
	default:
		return LinkMsg{}, fmt.Errorf("sharechain: unknown link message type %d", m.Type)
	}
	return m, nil
}
