package hop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/unfed/unfed/relay/cell"
)

// Client↔hop messages (spec §3). Each is one relay DATA message:
//
//	type  u8
//	body  type-specific, below
//
// Decode parses any of them; Msg.Append encodes.

// Version is the compute protocol version this package speaks (spec §3.1):
// the version byte of SETUP and SETUP_OK. Version 2 added the confidential
// roles (spec/10-confidential.md §3).
const Version = 2

// Limits (spec §3.10).
const (
	// MaxModelID is the longest model id, in bytes.
	MaxModelID = 128
	// MaxReason is the longest ERROR reason, in bytes.
	MaxReason = 255
	// MaxTokens is the most token ids one TOKENS message may carry.
	MaxTokens = (cell.MaxMessage - tokensHeader) / 4
	// MaxTopK is the largest top-k a client may ask for; 0 asks for the dense
	// vector instead.
	MaxTopK = (cell.MaxMessage - logitsHeader) / 8
	// MaxDenseLogits is the largest vocabulary whose dense logits fit a LOGITS
	// message.
	MaxDenseLogits = (cell.MaxMessage - logitsHeader) / 4
	// MaxContextField is the largest context a SETUP may ask for.
	MaxContextField = 1 << 24
	// MaxDealRows is the most positions one DEAL (one step) may cover.
	MaxDealRows = 255 // mpc.MaxStepRows
)

// MsgType is the first byte of a client↔hop message.
type MsgType uint8

// Message types. Client to hop have the high bit clear; hop to client set.
const (
	TypeSetup     MsgType = 0x01
	TypeTokens    MsgType = 0x02
	TypeTruncate  MsgType = 0x04
	TypeTeardown  MsgType = 0x05
	TypeDeal      MsgType = 0x06
	TypeMPCInput  MsgType = 0x07
	TypeHidden    MsgType = 0x08
	TypeBundleGet MsgType = 0x09
	TypeSetupOK   MsgType = 0x81
	TypeLogits    MsgType = 0x82
	TypeError     MsgType = 0x83
	TypeMPCOutput MsgType = 0x84
	TypeFinal     MsgType = 0x85
	TypeBundle    MsgType = 0x86
)

func (t MsgType) String() string {
	switch t {
	case TypeSetup:
		return "SETUP"
	case TypeTokens:
		return "TOKENS"
	case TypeTruncate:
		return "TRUNCATE"
	case TypeTeardown:
		return "TEARDOWN"
	case TypeDeal:
		return "DEAL"
	case TypeMPCInput:
		return "MPC_INPUT"
	case TypeSetupOK:
		return "SETUP_OK"
	case TypeLogits:
		return "LOGITS"
	case TypeError:
		return "ERROR"
	case TypeMPCOutput:
		return "MPC_OUTPUT"
	case TypeHidden:
		return "HIDDEN"
	case TypeFinal:
		return "FINAL_HIDDEN"
	case TypeBundleGet:
		return "BUNDLE_GET"
	case TypeBundle:
		return "BUNDLE_DATA"
	}
	return fmt.Sprintf("TYPE(%#02x)", uint8(t))
}

// Msg is a client↔hop message.
type Msg interface {
	// Type returns the message type.
	Type() MsgType
	// Append appends the encoded message, type byte first, to dst.
	Append(dst []byte) []byte
}

// ErrMalformed is wrapped by every decoding error of this package.
var ErrMalformed = errors.New("hop: malformed message")

// ErrUnknownType is returned (wrapping ErrMalformed) for a message type this
// version does not know; the hop answers it with CodeUnsupported.
var ErrUnknownType = fmt.Errorf("%w: unknown type", ErrMalformed)

// ErrVersion is returned (wrapping ErrMalformed) for a SETUP of another
// protocol version.
var ErrVersion = fmt.Errorf("%w: unsupported version", ErrMalformed)

func malformed(t MsgType, format string, args ...any) error {
	return fmt.Errorf("%w: %v: %s", ErrMalformed, t, fmt.Sprintf(format, args...))
}

// Role is what a hop does in the circuit (spec §2, spec/10 §3.1).
type Role uint8

// Roles.
const (
	RoleCompute Role = 0 // runs a layer range in the clear (anonymous circuits)
	RolePartyA  Role = 1 // side A of a confidential stage
	RolePartyB  Role = 2 // side B of a confidential stage
	RoleDealer  Role = 3 // deals a confidential stage's correlated randomness
)

func (r Role) String() string {
	switch r {
	case RoleCompute:
		return "compute"
	case RolePartyA:
		return "party-A"
	case RolePartyB:
		return "party-B"
	case RoleDealer:
		return "dealer"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// IsParty reports whether r is party-A or party-B.
func (r Role) IsParty() bool { return r == RolePartyA || r == RolePartyB }

// Input says where a hop's input comes from (spec §3.2).
type Input uint8

// Input modes.
const (
	// InputActivations: ACTIVATIONS edge messages from the previous compute hop.
	InputActivations Input = 0
	// InputTokens: TOKENS from the client, token ids in the clear (the first
	// compute hop of an anonymous circuit).
	InputTokens Input = 1
	// InputShares: secret shares, for the parties of a confidential stage:
	// MPC_INPUT from the client (stage 1) or MPC_RESHARE from the previous
	// stage's parties.
	InputShares Input = 2
	// InputNone: a dealer, whose only input is the client's DEAL.
	InputNone Input = 3
	// InputHidden: HIDDEN from the client, the residual stream entering
	// layer 0 (embedding rows the client computed), for the first hop of
	// an anonymous circuit whose client holds the model's ends.
	InputHidden Input = 4
)

func (in Input) String() string {
	switch in {
	case InputActivations:
		return "activations"
	case InputTokens:
		return "tokens"
	case InputShares:
		return "shares"
	case InputNone:
		return "none"
	case InputHidden:
		return "hidden"
	}
	return fmt.Sprintf("input(%d)", uint8(in))
}

// DType is the element type of activations on an edge (spec §4.2).
type DType uint8

// Activation element types.
const (
	F32 DType = 0
	F16 DType = 1
)

// Size returns the bytes per element, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case F16:
		return 2
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case F16:
		return "f16"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// EdgeSecret is a 32-byte secret the client gives both ends of one edge;
// each sender direction derives its own key from it (spec §5.1).
type EdgeSecret [32]byte

// KeySlot names an edge secret in a SETUP (spec §3.2).
type KeySlot uint8

// Key slots.
const (
	SlotIn    KeySlot = 1 // edge from the previous compute hop, or from the same side of the previous stage
	SlotInB   KeySlot = 2 // edge from the other side of the previous stage
	SlotOut   KeySlot = 3 // edge to the next compute hop, or to the same side of the next stage
	SlotPair  KeySlot = 4 // the A↔B edge of a stage
	SlotOutB  KeySlot = 5 // edge to the other side of the next stage
	SlotDeal  KeySlot = 6 // dealer → party A of its stage
	SlotDealB KeySlot = 7 // dealer → party B of its stage
)

// numSlots is the number of key slots (values 1..numSlots).
const numSlots = 7

// Setup opens a hop's session for the circuit (spec §3.2, spec/10 §3.2).
type Setup struct {
	Role       Role
	Input      Input
	DType      DType  // element type of the activations this hop sends
	OutHops    int    // links the output travels to reach the next hop; 0 without Out
	First      int    // expected first layer
	Last       int    // expected layer after the last
	MaxContext int    // positions the session needs; 0: the relay's limit
	TopK       int    // last hop: LOGITS carry the top TopK; 0: the dense vector
	ModelID    string // the model catalog id
	// NextLast is, for a party of a confidential stage that is not the
	// last, the layer after the last of the next stage: the party binds
	// its reshares to the next stage's hash (spec/10 §3.2). 0 otherwise.
	NextLast int
	// Edge secrets; nil when absent.
	In, InB, Out, Pair, OutB, Deal, DealB *EdgeSecret
	// HiddenOut asks the last shard of an anonymous circuit to return the
	// final hidden state (FINAL_HIDDEN) instead of logits: the client
	// applies the final norm and the output head itself. It travels in the
	// extension bytes (spec §3.2): a flags byte after the keys, bit 0.
	HiddenOut bool `json:",omitempty"`
}

// setupFlagHiddenOut is bit 0 of SETUP's extension flags byte.
const setupFlagHiddenOut = 0x01

const setupFixed = 1 + 1 + 1 + 1 + 1 + 1 + 2 + 2 + 2 + 4 + 4 + 1

// Type implements Msg.
func (*Setup) Type() MsgType { return TypeSetup }

// Append implements Msg. Out-of-range fields are encoded truncated; Decode
// of the result then rejects them.
func (m *Setup) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeSetup), Version, byte(m.Role), byte(m.Input), byte(m.DType), byte(m.OutHops))
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.First))
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Last))
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.NextLast))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.MaxContext))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.TopK))
	dst = append(dst, byte(len(m.ModelID)))
	dst = append(dst, m.ModelID...)
	keys := m.keys()
	n := 0
	for _, k := range keys {
		if k != nil {
			n++
		}
	}
	dst = append(dst, byte(n))
	for i, k := range keys {
		if k != nil {
			dst = append(dst, byte(i+1))
			dst = append(dst, k[:]...)
		}
	}
	if m.HiddenOut {
		// Without flags the extension is absent, so a SETUP that asks for
		// nothing new encodes as before.
		dst = append(dst, setupFlagHiddenOut)
	}
	return dst
}

// keys returns the edge secrets in slot order (slot i+1 at index i).
func (m *Setup) keys() [numSlots]*EdgeSecret {
	return [numSlots]*EdgeSecret{m.In, m.InB, m.Out, m.Pair, m.OutB, m.Deal, m.DealB}
}

// slot returns the field of key slot k, or nil for an unknown slot.
func (m *Setup) slot(k KeySlot) **EdgeSecret {
	switch k {
	case SlotIn:
		return &m.In
	case SlotInB:
		return &m.InB
	case SlotOut:
		return &m.Out
	case SlotPair:
		return &m.Pair
	case SlotOutB:
		return &m.OutB
	case SlotDeal:
		return &m.Deal
	case SlotDealB:
		return &m.DealB
	}
	return nil
}

func decodeSetup(b []byte) (*Setup, error) {
	if len(b) < setupFixed {
		return nil, malformed(TypeSetup, "%d bytes", len(b))
	}
	if b[1] != Version {
		return nil, fmt.Errorf("%w %d", ErrVersion, b[1])
	}
	m := &Setup{
		Role: Role(b[2]), Input: Input(b[3]), DType: DType(b[4]), OutHops: int(b[5]),
		First:      int(binary.BigEndian.Uint16(b[6:])),
		Last:       int(binary.BigEndian.Uint16(b[8:])),
		NextLast:   int(binary.BigEndian.Uint16(b[10:])),
		MaxContext: int(binary.BigEndian.Uint32(b[12:])),
		TopK:       int(binary.BigEndian.Uint32(b[16:])),
	}
	idLen := int(b[20])
	rest := b[setupFixed:]
	if idLen == 0 || idLen > MaxModelID || len(rest) < idLen+1 {
		return nil, malformed(TypeSetup, "model id length %d", idLen)
	}
	m.ModelID = string(rest[:idLen])
	rest = rest[idLen:]
	nKeys := int(rest[0])
	rest = rest[1:]
	if nKeys > numSlots || len(rest) < nKeys*33 {
		return nil, malformed(TypeSetup, "%d keys in %d bytes", nKeys, len(rest))
	}
	for range nKeys {
		k := new(EdgeSecret)
		copy(k[:], rest[1:33])
		p := m.slot(KeySlot(rest[0]))
		if p == nil {
			return nil, malformed(TypeSetup, "key slot %d", rest[0])
		}
		if *p != nil {
			return nil, malformed(TypeSetup, "key slot %d twice", rest[0])
		}
		*p = k
		rest = rest[33:]
	}
	// Bytes after the keys are extensions (§3.2, §9): the first is a flags
	// byte whose unknown bits are ignored, and anything after it too.
	if len(rest) > 0 {
		m.HiddenOut = rest[0]&setupFlagHiddenOut != 0
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// check enforces the field constraints of spec §3.2 that do not depend on
// what the relay serves.
func (m *Setup) check() error {
	switch {
	case m.Role > RoleDealer:
		return malformed(TypeSetup, "role %d", m.Role)
	case m.Input > InputHidden:
		return malformed(TypeSetup, "input %d", m.Input)
	case m.DType.Size() == 0:
		return malformed(TypeSetup, "dtype %d", m.DType)
	case m.First < 0 || m.First >= m.Last || m.Last > math.MaxUint16:
		return malformed(TypeSetup, "layer range [%d,%d)", m.First, m.Last)
	case m.NextLast != 0 && (m.NextLast <= m.Last || m.NextLast > math.MaxUint16):
		return malformed(TypeSetup, "next stage ending at %d after [%d,%d)", m.NextLast, m.First, m.Last)
	case m.MaxContext < 0 || m.TopK < 0:
		return malformed(TypeSetup, "max context %d, top-k %d", m.MaxContext, m.TopK)
	case m.MaxContext > MaxContextField:
		return malformed(TypeSetup, "max context %d", m.MaxContext)
	case m.TopK > MaxTopK:
		return malformed(TypeSetup, "top-k %d", m.TopK)
	case m.HiddenOut && (m.TopK != 0 || m.Role != RoleCompute):
		return malformed(TypeSetup, "final hidden state with top-k %d or role %v", m.TopK, m.Role)
	case (m.Out == nil) != (m.OutHops == 0):
		return malformed(TypeSetup, "out key without hop count or hop count %d without key", m.OutHops)
	case m.OutHops > cell.MaxEdgeHops:
		return malformed(TypeSetup, "out hops %d", m.OutHops)
	}
	return nil
}

// Tokens carries token ids in the clear to the first shard of an anonymous
// circuit (spec §3.3):
//
//	start  u32  position of the first id
//	count  u32
//	ids    count × u32
type Tokens struct {
	Start int
	IDs   []int
}

const tokensHeader = 1 + 4 + 4

// Type implements Msg.
func (*Tokens) Type() MsgType { return TypeTokens }

// Append implements Msg.
func (m *Tokens) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeTokens))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Start))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(m.IDs)))
	for _, id := range m.IDs {
		dst = binary.BigEndian.AppendUint32(dst, uint32(id))
	}
	return dst
}

func decodeTokens(b []byte) (*Tokens, error) {
	if len(b) < tokensHeader {
		return nil, malformed(TypeTokens, "%d bytes", len(b))
	}
	start := binary.BigEndian.Uint32(b[1:])
	n := binary.BigEndian.Uint32(b[5:])
	if n == 0 || n > MaxTokens || uint64(len(b)-tokensHeader) != 4*uint64(n) {
		return nil, malformed(TypeTokens, "%d ids in %d bytes", n, len(b))
	}
	if uint64(start)+uint64(n) > MaxContextField {
		return nil, malformed(TypeTokens, "positions past %d", MaxContextField)
	}
	m := &Tokens{Start: int(start), IDs: make([]int, n)}
	for i := range m.IDs {
		m.IDs[i] = int(binary.BigEndian.Uint32(b[tokensHeader+4*i:]))
	}
	return m, nil
}

// Deal asks a dealer to deal the next step of its stage, covering Rows
// positions (a prompt's positions cross a stage together, spec/10 §3.4):
//
//	step  u32  MUST equal the dealer's next step
//	rows  u32  1..MaxDealRows
//
// The dealer sends the step's PREP to party A and party B over its deal
// edges (MPC_PREP) and answers nothing.
type Deal struct {
	Step, Rows int
}

const dealLen = 1 + 4 + 4

// Type implements Msg.
func (*Deal) Type() MsgType { return TypeDeal }

// Append implements Msg.
func (m *Deal) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(append(dst, byte(TypeDeal)), uint32(m.Step))
	return binary.BigEndian.AppendUint32(dst, uint32(m.Rows))
}

func decodeDeal(b []byte) (*Deal, error) {
	if len(b) != dealLen {
		return nil, malformed(TypeDeal, "%d bytes", len(b))
	}
	m := &Deal{Step: int(binary.BigEndian.Uint32(b[1:])), Rows: int(binary.BigEndian.Uint32(b[5:]))}
	if m.Rows < 1 || m.Rows > MaxDealRows {
		return nil, malformed(TypeDeal, "rows %d", m.Rows)
	}
	if m.Step >= MaxContextField {
		return nil, malformed(TypeDeal, "step past %d", MaxContextField)
	}
	return m, nil
}

// MPCInput carries the client's share of one position's input to a party of
// the first stage (spec/10 §3.4):
//
//	flags  u8   bit 0: FINAL, the last position of the client's batch
//	body   a compute/mpc SHARE message of kind INPUT (mpc.ShareInputs)
type MPCInput struct {
	Final bool
	Body  []byte
}

// Type implements Msg.
func (*MPCInput) Type() MsgType { return TypeMPCInput }

// Append implements Msg.
func (m *MPCInput) Append(dst []byte) []byte {
	return append(append(dst, byte(TypeMPCInput), finalFlag(m.Final)), m.Body...)
}

// MPCOutput carries a last-stage party's share of the stage's output for a
// FINAL step to the client (spec/10 §3.5):
//
//	flags  u8   bit 0: FINAL
//	body   a compute/mpc SHARE message of kind OUTPUT (mpc.ReconstructOutputs)
type MPCOutput struct {
	Final bool
	Body  []byte
}

// Type implements Msg.
func (*MPCOutput) Type() MsgType { return TypeMPCOutput }

// Append implements Msg.
func (m *MPCOutput) Append(dst []byte) []byte {
	return append(append(dst, byte(TypeMPCOutput), finalFlag(m.Final)), m.Body...)
}

// decodeFlagged parses the `flags u8 ‖ body (≥ 1 byte)` layout of MPC_INPUT
// and MPC_OUTPUT. Unknown flag bits are ignored.
func decodeFlagged(t MsgType, b []byte) (final bool, body []byte, err error) {
	if len(b) < 3 {
		return false, nil, malformed(t, "empty body")
	}
	return b[1]&flagFinal != 0, append([]byte(nil), b[2:]...), nil
}

// Truncate drops every cached position >= Pos (spec §3.5):
//
//	pos  u32
type Truncate struct {
	Pos int
}

// Type implements Msg.
func (*Truncate) Type() MsgType { return TypeTruncate }

// Append implements Msg.
func (m *Truncate) Append(dst []byte) []byte {
	return binary.BigEndian.AppendUint32(append(dst, byte(TypeTruncate)), uint32(m.Pos))
}

// Teardown closes the hop's session (spec §3.6). It has no body.
type Teardown struct{}

// Type implements Msg.
func (*Teardown) Type() MsgType { return TypeTeardown }

// Append implements Msg.
func (*Teardown) Append(dst []byte) []byte { return append(dst, byte(TypeTeardown)) }

// SetupOK says what a hop serves (spec §3.7):
//
//	version      u8
//	first        u16
//	last         u16
//	dim          u32
//	vocab        u32
//	max context  u32  the session's effective limit
//	id length    u8
//	model id
type SetupOK struct {
	First, Last int
	Dim         int
	Vocab       int
	MaxContext  int
	ModelID     string
}

const setupOKFixed = 1 + 1 + 2 + 2 + 4 + 4 + 4 + 1

// Type implements Msg.
func (*SetupOK) Type() MsgType { return TypeSetupOK }

// Append implements Msg.
func (m *SetupOK) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeSetupOK), Version)
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.First))
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Last))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Dim))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Vocab))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.MaxContext))
	dst = append(dst, byte(len(m.ModelID)))
	return append(dst, m.ModelID...)
}

func decodeSetupOK(b []byte) (*SetupOK, error) {
	if len(b) < setupOKFixed {
		return nil, malformed(TypeSetupOK, "%d bytes", len(b))
	}
	if b[1] != Version {
		return nil, fmt.Errorf("%w %d", ErrVersion, b[1])
	}
	m := &SetupOK{
		First:      int(binary.BigEndian.Uint16(b[2:])),
		Last:       int(binary.BigEndian.Uint16(b[4:])),
		Dim:        int(binary.BigEndian.Uint32(b[6:])),
		Vocab:      int(binary.BigEndian.Uint32(b[10:])),
		MaxContext: int(binary.BigEndian.Uint32(b[14:])),
	}
	idLen := int(b[18])
	if idLen == 0 || idLen > MaxModelID || len(b) < setupOKFixed+idLen {
		return nil, malformed(TypeSetupOK, "model id length %d", idLen)
	}
	m.ModelID = string(b[setupOKFixed : setupOKFixed+idLen])
	if m.First >= m.Last || m.Dim == 0 || m.Vocab == 0 {
		return nil, malformed(TypeSetupOK, "range [%d,%d) dim %d vocab %d", m.First, m.Last, m.Dim, m.Vocab)
	}
	return m, nil
}

// Logits returns the last shard's output for one position (spec §3.8):
//
//	pos    u32  the input position whose next-token logits these are
//	mode   u8   0: dense, 1: top-k
//	count  u32
//	dense: count × f32 (little-endian), logit of id i at index i
//	top-k: count × (id u32, value f32 bits u32), by value descending, ties by
//	       lower id first
type Logits struct {
	Pos int
	// Dense is the whole vector when the client asked for top-k 0.
	Dense []float32
	// TopK holds the selected entries otherwise.
	TopK []Entry
}

// Entry is one (token id, logit) pair.
type Entry struct {
	ID    int
	Value float32
}

const logitsHeader = 1 + 4 + 1 + 4

// Type implements Msg.
func (*Logits) Type() MsgType { return TypeLogits }

// Append implements Msg. A Logits with TopK set is encoded in top-k mode.
func (m *Logits) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeLogits))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Pos))
	if m.TopK != nil {
		dst = append(dst, 1)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(m.TopK)))
		for _, e := range m.TopK {
			dst = binary.BigEndian.AppendUint32(dst, uint32(e.ID))
			dst = binary.BigEndian.AppendUint32(dst, math.Float32bits(e.Value))
		}
		return dst
	}
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(m.Dense)))
	return appendF32s(dst, m.Dense)
}

func decodeLogits(b []byte) (*Logits, error) {
	if len(b) < logitsHeader {
		return nil, malformed(TypeLogits, "%d bytes", len(b))
	}
	m := &Logits{Pos: int(binary.BigEndian.Uint32(b[1:]))}
	n := uint64(binary.BigEndian.Uint32(b[6:]))
	body := b[logitsHeader:]
	switch b[5] {
	case 0:
		if n == 0 || n > MaxDenseLogits || uint64(len(body)) != 4*n {
			return nil, malformed(TypeLogits, "%d dense values in %d bytes", n, len(body))
		}
		m.Dense = make([]float32, n)
		for i := range m.Dense {
			m.Dense[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
		}
	case 1:
		if n == 0 || n > MaxTopK || uint64(len(body)) != 8*n {
			return nil, malformed(TypeLogits, "%d entries in %d bytes", n, len(body))
		}
		m.TopK = make([]Entry, n)
		for i := range m.TopK {
			id := binary.BigEndian.Uint32(body[8*i:])
			if id > math.MaxInt32 {
				return nil, malformed(TypeLogits, "id %d", id)
			}
			m.TopK[i] = Entry{ID: int(id), Value: math.Float32frombits(binary.BigEndian.Uint32(body[8*i+4:]))}
		}
	default:
		return nil, malformed(TypeLogits, "mode %d", b[5])
	}
	return m, nil
}

// Decode parses a client↔hop message. The result does not alias b.
// An unknown type yields an error wrapping ErrUnknownType.
func Decode(b []byte) (Msg, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	t := MsgType(b[0])
	switch t {
	case TypeSetup:
		return decodeSetup(b)
	case TypeTokens:
		return decodeTokens(b)
	case TypeDeal:
		return decodeDeal(b)
	case TypeMPCInput:
		final, body, err := decodeFlagged(t, b)
		if err != nil {
			return nil, err
		}
		return &MPCInput{Final: final, Body: body}, nil
	case TypeMPCOutput:
		final, body, err := decodeFlagged(t, b)
		if err != nil {
			return nil, err
		}
		return &MPCOutput{Final: final, Body: body}, nil
	case TypeTruncate:
		if len(b) != 5 {
			return nil, malformed(t, "%d bytes", len(b))
		}
		return &Truncate{Pos: int(binary.BigEndian.Uint32(b[1:]))}, nil
	case TypeTeardown:
		if len(b) != 1 {
			return nil, malformed(t, "%d bytes", len(b))
		}
		return &Teardown{}, nil
	case TypeSetupOK:
		return decodeSetupOK(b)
	case TypeLogits:
		return decodeLogits(b)
	case TypeError:
		return decodeError(b)
	case TypeHidden, TypeFinal:
		return decodeHidden(t, b)
	case TypeBundleGet:
		return decodeBundleGet(b)
	case TypeBundle:
		return decodeBundleData(b)
	case TypeCommitOn, TypeReveal, TypeCommit, TypeRevealed, TypePartyCommit:
		return decodeVerifyMsg(t, b) // spec/11 §2.4, commitmsg.go
	case TypeTicket, TypeTicketOK:
		return decodeTicketMsg(t, b) // spec/11 §3.5, ticketmsg.go
	case TypePartyReveal, TypePartyRevealed:
		return decodePartyRevealMsg(t, b) // spec/11 §7.5, partyreveal.go
	case TypePay:
		return decodePay(b) // spec/12 §2.6, pay.go
	}
	return nil, fmt.Errorf("%w %#02x", ErrUnknownType, b[0])
}

// Hidden carries hidden states between the client and an anonymous
// circuit's ends (spec §3.11), in ACTIVATIONS' layout (§4.2) after its own
// type byte:
//
//	HIDDEN (0x08), client → first hop: rows entering layer 0, the
//	embedding rows the client looked up itself; FINAL on a batch's last.
//	FINAL_HIDDEN (0x85), last hop → client: one row, the residual stream
//	after the last layer at a FINAL batch's last position, n = 1.
type Hidden struct {
	// Out selects FINAL_HIDDEN (hop → client) instead of HIDDEN.
	Out bool
	Activations
}

// Type implements Msg.
func (m *Hidden) Type() MsgType {
	if m.Out {
		return TypeFinal
	}
	return TypeHidden
}

// Append implements Msg.
func (m *Hidden) Append(dst []byte) []byte {
	n := len(dst)
	dst = m.Activations.Append(dst)
	dst[n] = byte(m.Type())
	return dst
}

// HiddenRows returns how many rows of dim f32 elements fit one HIDDEN.
func HiddenRows(dim int) int {
	if dim <= 0 {
		return 0
	}
	return (cell.MaxMessage - activationsHeader) / (dim * 4)
}

func decodeHidden(t MsgType, b []byte) (*Hidden, error) { return decodeHiddenInto(t, b, nil) }

// decodeHiddenInto is decodeHidden with the rows decoded into rows
// (decodeActivationsInto).
func decodeHiddenInto(t MsgType, b []byte, rows []float32) (*Hidden, error) {
	if len(b) > cell.MaxMessage {
		return nil, malformed(t, "%d bytes", len(b))
	}
	a, err := decodeActivationsInto(b, rows)
	if err != nil {
		return nil, malformed(t, "%v", err)
	}
	if t == TypeFinal && a.N != 1 {
		return nil, malformed(t, "%d rows", a.N)
	}
	return &Hidden{Out: t == TypeFinal, Activations: *a}, nil
}

// Bundle transfer limits (spec §3.13).
const (
	// MaxBundleRead is the most bytes one BUNDLE_GET may ask for.
	MaxBundleRead = 16 << 20
	// MaxBundleChunk is the most bundle bytes one BUNDLE_DATA carries.
	MaxBundleChunk = cell.MaxMessage - bundleDataHeader
	// MaxBundleSize is the largest bundle a hop may announce.
	MaxBundleSize = 1 << 40
)

// BundleGet asks a hop for bytes of the client bundle of a model it serves
// (spec §3.13); it needs no SETUP:
//
//	offset     u64
//	length     u32  1..MaxBundleRead
//	id length  u8   1..128
//	model id
type BundleGet struct {
	Offset  int64
	Length  int
	ModelID string
}

const bundleGetFixed = 1 + 8 + 4 + 1

// Type implements Msg.
func (*BundleGet) Type() MsgType { return TypeBundleGet }

// Append implements Msg.
func (m *BundleGet) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(append(dst, byte(TypeBundleGet)), uint64(m.Offset))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Length))
	return append(append(dst, byte(len(m.ModelID))), m.ModelID...)
}

func decodeBundleGet(b []byte) (*BundleGet, error) {
	if len(b) < bundleGetFixed {
		return nil, malformed(TypeBundleGet, "%d bytes", len(b))
	}
	off := binary.BigEndian.Uint64(b[1:])
	n := binary.BigEndian.Uint32(b[9:])
	idLen := int(b[13])
	switch {
	case off >= MaxBundleSize || n == 0 || n > MaxBundleRead:
		return nil, malformed(TypeBundleGet, "%d bytes at %d", n, off)
	case idLen == 0 || idLen > MaxModelID || len(b) != bundleGetFixed+idLen:
		return nil, malformed(TypeBundleGet, "model id length %d in %d bytes", idLen, len(b))
	}
	return &BundleGet{Offset: int64(off), Length: int(n), ModelID: string(b[bundleGetFixed:])}, nil
}

// BundleData carries bundle bytes to the client (spec §3.13):
//
//	total   u64  the bundle's size
//	offset  u64  where Data starts; offset + len(data) ≤ total
//	data    rest, 0..MaxBundleChunk bytes
type BundleData struct {
	Total  int64
	Offset int64
	Data   []byte
}

const bundleDataHeader = 1 + 8 + 8

// Type implements Msg.
func (*BundleData) Type() MsgType { return TypeBundle }

// Append implements Msg.
func (m *BundleData) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(append(dst, byte(TypeBundle)), uint64(m.Total))
	return append(binary.BigEndian.AppendUint64(dst, uint64(m.Offset)), m.Data...)
}

func decodeBundleData(b []byte) (*BundleData, error) {
	if len(b) < bundleDataHeader || len(b) > cell.MaxMessage {
		return nil, malformed(TypeBundle, "%d bytes", len(b))
	}
	total := binary.BigEndian.Uint64(b[1:])
	off := binary.BigEndian.Uint64(b[9:])
	n := uint64(len(b) - bundleDataHeader)
	if total > MaxBundleSize || off > total || n > total-off {
		return nil, malformed(TypeBundle, "%d bytes at %d of %d", n, off, total)
	}
	return &BundleData{Total: int64(total), Offset: int64(off), Data: append([]byte(nil), b[bundleDataHeader:]...)}, nil
}
