package hop

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/unfed/unfed/compute/tensor"
	"github.com/unfed/unfed/relay/cell"
)

// Edge messages (spec §4) travel hop to hop inside an edge envelope
// (edgecrypto.go), so only the intended compute hop reads them:
//
//	type  u8
//	body  type-specific, below

// EdgeType is the first byte of an edge message.
type EdgeType uint8

// Edge message types.
const (
	EdgeActivations EdgeType = 0x01
	EdgeMPCPeer     EdgeType = 0x03
	EdgeMPCPrep     EdgeType = 0x04
	EdgeMPCReshare  EdgeType = 0x05
)

func (t EdgeType) String() string {
	switch t {
	case EdgeActivations:
		return "ACTIVATIONS"
	case EdgeMPCPeer:
		return "MPC_PEER"
	case EdgeMPCPrep:
		return "MPC_PREP"
	case EdgeMPCReshare:
		return "MPC_RESHARE"
	}
	return fmt.Sprintf("EDGE(%#02x)", uint8(t))
}

// EdgeMsg is an edge message in the clear.
type EdgeMsg interface {
	// EdgeType returns the message type.
	EdgeType() EdgeType
	// Append appends the encoded message, type byte first, to dst.
	Append(dst []byte) []byte
}

// MaxEdgePlain is the largest edge message plaintext: an envelope must fit a
// relay message (cell.MaxMessage).
const MaxEdgePlain = maxEnvelope - EnvelopeOverhead

// flagFinal marks the last message of the client's input batch: the last
// shard answers it with LOGITS (spec §4.2), the last stage with MPC_OUTPUT.
const flagFinal = 0x01

// flagMore marks an MPC_PREP fragment that the next MPC_PREP continues.
const flagMore = 0x02

// Activations carries the output of hop i, the input of hop i+1 (spec §4.2):
//
//	start  u32  position of the first row
//	n      u32  rows
//	dim    u32  elements per row
//	dtype  u8   0: f32, 1: f16
//	flags  u8   bit 0: FINAL
//	data   n × dim elements, little-endian
//
// Data is held as float32 in memory; Append converts to DType.
type Activations struct {
	Start int
	N     int
	Dim   int
	DType DType
	Final bool
	Data  []float32 // N*Dim values
}

const activationsHeader = 1 + 4 + 4 + 4 + 1 + 1

// EdgeType implements EdgeMsg.
func (*Activations) EdgeType() EdgeType { return EdgeActivations }

// Append implements EdgeMsg.
func (m *Activations) Append(dst []byte) []byte {
	dst = append(dst, byte(EdgeActivations))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Start))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.N))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Dim))
	dst = append(dst, byte(m.DType), finalFlag(m.Final))
	if m.DType == F16 {
		n := len(dst)
		dst = slices.Grow(dst, 2*len(m.Data))[:n+2*len(m.Data)]
		out := dst[n:]
		for i, v := range m.Data {
			binary.LittleEndian.PutUint16(out[2*i:], tensor.F32ToF16(v))
		}
		return dst
	}
	return appendF32s(dst, m.Data)
}

// appendF32s appends vs as little-endian f32.
func appendF32s(dst []byte, vs []float32) []byte {
	n := len(dst)
	dst = slices.Grow(dst, 4*len(vs))[:n+4*len(vs)]
	out := dst[n:]
	for i, v := range vs {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return dst
}

// RowsPerMessage returns how many rows of dim elements of type d fit one
// ACTIVATIONS message (at least 1 for every dim the engine accepts).
func RowsPerMessage(dim int, d DType) int {
	if dim <= 0 || d.Size() == 0 {
		return 0
	}
	return (MaxEdgePlain - activationsHeader) / (dim * d.Size())
}

func finalFlag(f bool) byte {
	if f {
		return flagFinal
	}
	return 0
}

func decodeActivations(b []byte) (*Activations, error) { return decodeActivationsInto(b, nil) }

// decodeActivationsInto is decodeActivations with the rows decoded into
// buf[:0], grown if need be (a session's scratch, reused for every message:
// docs/PERFORMANCE.md, seventh look; nil gives a new slice). The result's
// Data may alias buf.
func decodeActivationsInto(b []byte, buf []float32) (*Activations, error) {
	if len(b) < activationsHeader {
		return nil, edgeMalformed(EdgeActivations, "%d bytes", len(b))
	}
	m := &Activations{
		Start: int(binary.BigEndian.Uint32(b[1:])),
		N:     int(binary.BigEndian.Uint32(b[5:])),
		Dim:   int(binary.BigEndian.Uint32(b[9:])),
		DType: DType(b[13]),
		Final: b[14]&flagFinal != 0,
	}
	size := m.DType.Size()
	body := b[activationsHeader:]
	switch {
	case size == 0:
		return nil, edgeMalformed(EdgeActivations, "dtype %d", b[13])
	case m.N == 0 || m.Dim == 0:
		return nil, edgeMalformed(EdgeActivations, "%d rows of %d", m.N, m.Dim)
	case uint64(m.N)*uint64(m.Dim)*uint64(size) != uint64(len(body)):
		return nil, edgeMalformed(EdgeActivations, "%d×%d %v in %d bytes", m.N, m.Dim, m.DType, len(body))
	case uint64(m.Start)+uint64(m.N) > MaxContextField:
		return nil, edgeMalformed(EdgeActivations, "positions past %d", MaxContextField)
	}
	m.Data = slices.Grow(buf[:0], m.N*m.Dim)[:m.N*m.Dim]
	if m.DType == F16 {
		for i := range m.Data {
			m.Data[i] = tensor.F16ToF32(binary.LittleEndian.Uint16(body[2*i:]))
		}
	} else {
		for i := range m.Data {
			m.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
		}
	}
	return m, nil
}

// MPCPrep carries a dealer's PREP for one step of its stage, or a fragment
// of it, to party A (channel ChannelDeal under SlotDeal, 1 hop) or party B
// (under SlotDealB, 2 hops) (spec/10 §3.6):
//
//	flags  u8   bit 1: MORE, the PREP continues in the next MPC_PREP
//	body   the PREP (compute/mpc, version 4) or a fragment of it, ≥ 1 byte
//
// A PREP longer than MaxPrepFragment is cut (SplitPrep); the party joins the
// fragments until one without MORE.
type MPCPrep struct {
	More bool
	Body []byte
}

// MaxPrepFragment is the largest body of one MPC_PREP a dealer sends.
const MaxPrepFragment = cell.MaxMessage - 64

// EdgeType implements EdgeMsg.
func (*MPCPrep) EdgeType() EdgeType { return EdgeMPCPrep }

// Append implements EdgeMsg.
func (m *MPCPrep) Append(dst []byte) []byte {
	var f byte
	if m.More {
		f = flagMore
	}
	return append(append(dst, byte(EdgeMPCPrep), f), m.Body...)
}

// SplitPrep returns the MPC_PREP messages that carry prep in fragments of at
// most size bytes (size <= 0 or above MaxPrepFragment means
// MaxPrepFragment); every fragment but the last has MORE. The fragments
// alias prep.
func SplitPrep(prep []byte, size int) []*MPCPrep {
	if size <= 0 || size > MaxPrepFragment {
		size = MaxPrepFragment
	}
	var out []*MPCPrep
	for len(prep) > size {
		out = append(out, &MPCPrep{More: true, Body: prep[:size]})
		prep = prep[size:]
	}
	return append(out, &MPCPrep{Body: prep})
}

// MPCReshare carries one of a party's two reshare pieces of a step's output
// to a party of the next stage (spec/10 §3.6): the same-side piece on
// channel 0 under SlotOut, the other-side piece on channel 1 under SlotOutB.
//
//	flags  u8   bit 0: FINAL, copied from the step's input
//	body   a compute/mpc SHARE message of kind RESHARE
type MPCReshare struct {
	Final bool
	Body  []byte
}

// EdgeType implements EdgeMsg.
func (*MPCReshare) EdgeType() EdgeType { return EdgeMPCReshare }

// Append implements EdgeMsg.
func (m *MPCReshare) Append(dst []byte) []byte {
	return append(append(dst, byte(EdgeMPCReshare), finalFlag(m.Final)), m.Body...)
}

// MPCPeer carries one opaque compute/mpc message between the two parties of
// a stage (spec §4.4): forward from A to B, backward from B to A. The body
// PeerAbort alone is no compute/mpc message: a party whose session ends
// sends it so that the other party's step fails at once (spec/10 §3.7).
type MPCPeer struct {
	Body []byte
}

// PeerAbort is the body of the MPC_PEER a party sends the other party when
// its session ends with a step possibly outstanding.
var PeerAbort = []byte{0}

// IsAbort reports whether m is the abort notice (PeerAbort).
func (m *MPCPeer) IsAbort() bool { return len(m.Body) == 1 && m.Body[0] == 0 }

// EdgeType implements EdgeMsg.
func (*MPCPeer) EdgeType() EdgeType { return EdgeMPCPeer }

// Append implements EdgeMsg.
func (m *MPCPeer) Append(dst []byte) []byte {
	return append(append(dst, byte(EdgeMPCPeer)), m.Body...)
}

func edgeMalformed(t EdgeType, format string, args ...any) error {
	return fmt.Errorf("%w: %v: %s", ErrMalformed, t, fmt.Sprintf(format, args...))
}

// DecodeEdge parses an edge message plaintext. The result does not alias b.
func DecodeEdge(b []byte) (EdgeMsg, error) {
	return decodeEdge(b, true)
}

// decodeEdge is DecodeEdge; with copyBody false the bodies of MPC messages
// alias b (for a caller that owns b and drops it: an opened envelope, which
// holds hundreds of kilobytes for a PREP).
func decodeEdge(b []byte, copyBody bool) (EdgeMsg, error) { return decodeEdgeInto(b, copyBody, nil) }

// decodeEdgeInto is decodeEdge with ACTIVATIONS' rows decoded into rows
// (decodeActivationsInto).
func decodeEdgeInto(b []byte, copyBody bool, rows []float32) (EdgeMsg, error) {
	body := func(p []byte) []byte {
		// (an alias keeps all of b: only when p is most of it)
		if copyBody || 2*len(p) < cap(b) {
			return append([]byte(nil), p...)
		}
		return p
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty edge message", ErrMalformed)
	}
	switch EdgeType(b[0]) {
	case EdgeActivations:
		return decodeActivationsInto(b, rows)
	case EdgeMPCPeer:
		if len(b) < 2 {
			return nil, edgeMalformed(EdgeMPCPeer, "empty body")
		}
		return &MPCPeer{Body: body(b[1:])}, nil
	case EdgeMPCPrep:
		if len(b) < 3 {
			return nil, edgeMalformed(EdgeMPCPrep, "empty body")
		}
		return &MPCPrep{More: b[1]&flagMore != 0, Body: body(b[2:])}, nil
	case EdgeMPCReshare:
		if len(b) < 3 {
			return nil, edgeMalformed(EdgeMPCReshare, "empty body")
		}
		return &MPCReshare{Final: b[1]&flagFinal != 0, Body: body(b[2:])}, nil
	}
	return nil, fmt.Errorf("%w %v", ErrUnknownType, EdgeType(b[0]))
}
