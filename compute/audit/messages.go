package audit

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/unfed/unfed/compute/sample"
	"github.com/unfed/unfed/compute/tensor"
)

// The audit reads most messages itself rather than through relay/hop: it
// must read a SETUP of either version (1: 03-compute, 2: spec/10) and every
// message a relay saw even where a relay's own decoder would refuse it (an
// audit reads a record, it does not check a protocol), and it needs only the
// fields that locate a value (role, layers, position) and the values. SHARE
// messages are read with compute/mpc's DecodeShare (spec/10 §4.2: a step
// carries rows × dim values for consecutive positions). The tests check
// these readers against relay/hop's and compute/mpc's encoders.

// Message type bytes (spec/03 §3.1, §4.1 and spec/10 §3.4–§3.6).
const (
	typeSetup     = 0x01
	typeTokens    = 0x02
	typeMPCStep   = 0x03 // 03-compute's entry pair (superseded)
	typeDeal      = 0x06
	typeMPCInput  = 0x07
	typeHidden    = 0x08 // client → first hop: embedding rows (03 §3.11)
	typeLogits    = 0x82
	typeMPCOutput = 0x84
	typeFinal     = 0x85 // last hop → client: the final hidden state (03 §3.11)

	edgeActivations = 0x01
	edgeMPCShare    = 0x02 // 03-compute's entry pair (superseded)
	edgeMPCPeer     = 0x03
	edgeMPCPrep     = 0x04
	edgeMPCReshare  = 0x05
)

// Setup roles (spec/10 §3.1).
const (
	roleCompute = 0
	rolePartyA  = 1
	rolePartyB  = 2
	roleDealer  = 3
)

// setupInfo is what the audit reads from a SETUP.
type setupInfo struct {
	Version     int
	Role        int
	Input       int
	First, Last int
}

// parseSetup reads the fixed fields of a SETUP of version 1 or 2: type,
// version, role, input, dtype, out hops, first u16, last u16, and the rest.
func parseSetup(b []byte) (setupInfo, error) {
	const fixed = 1 + 1 + 1 + 1 + 1 + 1 + 2 + 2 + 4 + 4 + 1
	if len(b) < fixed || b[0] != typeSetup {
		return setupInfo{}, fmt.Errorf("audit: SETUP of %d bytes", len(b))
	}
	s := setupInfo{Version: int(b[1]), Role: int(b[2]), Input: int(b[3]),
		First: int(binary.BigEndian.Uint16(b[6:])), Last: int(binary.BigEndian.Uint16(b[8:]))}
	if s.Version < 1 || s.Version > 2 || s.Role > roleDealer || s.First >= s.Last {
		return setupInfo{}, fmt.Errorf("audit: SETUP version %d role %d range [%d,%d)", s.Version, s.Role, s.First, s.Last)
	}
	return s, nil
}

// peerMsg is a party ↔ party message (05-mpc §5.3): version u8, kind u8 = 2,
// round u16, step u32, count u32, count × u64.
type peerMsg struct {
	Round, Step int
	Values      []uint64
}

const peerHeader = 12

func parsePeer(b []byte) (peerMsg, error) {
	if len(b) < peerHeader || b[1] != 2 {
		return peerMsg{}, fmt.Errorf("audit: peer message of %d bytes", len(b))
	}
	n := binary.BigEndian.Uint32(b[8:])
	body := b[peerHeader:]
	if uint64(len(body)) != 8*uint64(n) {
		return peerMsg{}, fmt.Errorf("audit: peer message of %d values in %d bytes", n, len(body))
	}
	m := peerMsg{Round: int(binary.BigEndian.Uint16(b[2:])), Step: int(binary.BigEndian.Uint32(b[4:])), Values: make([]uint64, n)}
	for i := range m.Values {
		m.Values[i] = binary.BigEndian.Uint64(body[8*i:])
	}
	return m, nil
}

// FixedScale is the fixed-point scale of spec/10 (F = 16): a ring element u
// stands for int64(u) / 2^16.
const FixedScale = 16

// FixedToFloat interprets ring elements as signed fixed point at scale 2^F.
func FixedToFloat(vs []uint64, frac int) []float32 {
	out := make([]float32, len(vs))
	s := math.Ldexp(1, -frac)
	for i, v := range vs {
		out[i] = float32(float64(int64(v)) * s)
	}
	return out
}

// FloatToFixed encodes x as round(x·2^F) mod 2^64 (spec/10 §6).
func FloatToFixed(x []float32, frac int) []uint64 {
	out := make([]uint64, len(x))
	s := math.Ldexp(1, frac)
	for i, v := range x {
		out[i] = uint64(int64(math.Round(float64(v) * s)))
	}
	return out
}

// addRing returns a + b elementwise mod 2^64.
func addRing(a, b []uint64) []uint64 {
	out := make([]uint64, len(a))
	for i := range a {
		out[i] = a[i] + b[i]
	}
	return out
}

// The three plaintext messages of anonymous circuits (spec/03 §3.3, §3.8,
// §4.2), read the way relay/hop encodes them.

// tokensMsg is TOKENS: start u32, count u32, count × u32.
type tokensMsg struct {
	Start int
	IDs   []int
}

func parseTokens(b []byte) (tokensMsg, error) {
	const header = 1 + 4 + 4
	if len(b) < header || b[0] != typeTokens {
		return tokensMsg{}, fmt.Errorf("audit: TOKENS of %d bytes", len(b))
	}
	n := binary.BigEndian.Uint32(b[5:])
	if n == 0 || uint64(len(b)-header) != 4*uint64(n) {
		return tokensMsg{}, fmt.Errorf("audit: TOKENS of %d ids in %d bytes", n, len(b))
	}
	m := tokensMsg{Start: int(binary.BigEndian.Uint32(b[1:])), IDs: make([]int, n)}
	for i := range m.IDs {
		m.IDs[i] = int(binary.BigEndian.Uint32(b[header+4*i:]))
	}
	return m, nil
}

// activationsMsg is ACTIVATIONS: start u32, n u32, dim u32, dtype u8
// (0 f32, 1 f16), flags u8, n × dim little-endian values.
type activationsMsg struct {
	Start, N, Dim int
	Data          []float32
}

// HIDDEN and FINAL_HIDDEN (spec/03 §3.11) have the same layout after their
// own type byte; parseActivations reads them too.
func parseActivations(b []byte) (activationsMsg, error) {
	const header = 1 + 4 + 4 + 4 + 1 + 1
	if len(b) < header {
		return activationsMsg{}, fmt.Errorf("audit: ACTIVATIONS of %d bytes", len(b))
	}
	m := activationsMsg{Start: int(binary.BigEndian.Uint32(b[1:])), N: int(binary.BigEndian.Uint32(b[5:])),
		Dim: int(binary.BigEndian.Uint32(b[9:]))}
	size := map[byte]int{0: 4, 1: 2}[b[13]]
	body := b[header:]
	if size == 0 || m.N == 0 || m.Dim == 0 || uint64(m.N)*uint64(m.Dim)*uint64(size) != uint64(len(body)) {
		return activationsMsg{}, fmt.Errorf("audit: ACTIVATIONS of %d×%d dtype %d in %d bytes", m.N, m.Dim, b[13], len(body))
	}
	m.Data = make([]float32, m.N*m.Dim)
	for i := range m.Data {
		if size == 2 {
			m.Data[i] = tensor.F16ToF32(binary.LittleEndian.Uint16(body[2*i:]))
		} else {
			m.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
		}
	}
	return m, nil
}

// logitsMsg is LOGITS: pos u32, mode u8, count u32, then count f32
// little-endian (dense) or count × (id u32, f32 bits u32) big-endian
// (top-k, best first).
type logitsMsg struct {
	Pos    int
	Argmax int
	Values []float32
}

func parseLogits(b []byte) (logitsMsg, error) {
	const header = 1 + 4 + 1 + 4
	if len(b) < header || b[0] != typeLogits {
		return logitsMsg{}, fmt.Errorf("audit: LOGITS of %d bytes", len(b))
	}
	m := logitsMsg{Pos: int(binary.BigEndian.Uint32(b[1:]))}
	n := uint64(binary.BigEndian.Uint32(b[6:]))
	body := b[header:]
	switch {
	case n == 0:
		return logitsMsg{}, fmt.Errorf("audit: empty LOGITS")
	case b[5] == 0 && uint64(len(body)) == 4*n:
		m.Values = make([]float32, n)
		for i := range m.Values {
			m.Values[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
		}
		m.Argmax = sample.Argmax(m.Values)
	case b[5] == 1 && uint64(len(body)) == 8*n:
		m.Values = make([]float32, n)
		for i := range m.Values {
			m.Values[i] = math.Float32frombits(binary.BigEndian.Uint32(body[8*i+4:]))
		}
		m.Argmax = int(binary.BigEndian.Uint32(body))
	default:
		return logitsMsg{}, fmt.Errorf("audit: LOGITS mode %d of %d values in %d bytes", b[5], n, len(body))
	}
	return m, nil
}
