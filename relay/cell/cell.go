// Package cell is the pure codec of UNFED's circuit layer (spec/02-circuit.md
// §2–§5). It owns no connection and no key; the circuit switch
// (relay/circuit) and the client (relay/origin) call it.
//
// A cell is one link frame of one of three fixed sizes (size classes), so the
// length of a frame tells an observer only which class it is:
//
//	circ id   4 bytes  big-endian; 0 is reserved for link-level PADDING
//	command   1 byte
//	length    2 bytes  big-endian, number of meaningful payload bytes
//	payload   length bytes
//	padding   zero bytes up to the class size
//
// Inside RELAY_FORWARD and RELAY_BACKWARD payloads travel onion layers (package
// relay/onion); the innermost plaintext is a relay message fragment (see
// relaymsg.go). EDGE payloads carry an edge header (edge.go). EXTEND and
// EXTENDED are relay messages (extend.go).
package cell

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Size classes: the only lengths a cell frame may have (spec §2.1).
// The largest is chosen so a cell plus a Noise transport tag (16 bytes) fits in
// one 65535-byte Noise message.
const (
	ClassSmall  = 512
	ClassMedium = 4096
	ClassLarge  = 65024
)

// Classes lists the size classes from smallest to largest.
var Classes = [...]int{ClassSmall, ClassMedium, ClassLarge}

// HeaderLen is the length of the cell header.
const HeaderLen = 7

// MaxPayload is the largest payload of any cell.
const MaxPayload = ClassLarge - HeaderLen

// Command says what a cell does (spec §2.2).
type Command uint8

// Cell commands.
const (
	CmdPadding       Command = 0
	CmdCreate        Command = 1
	CmdCreated       Command = 2
	CmdRelayForward  Command = 3
	CmdRelayBackward Command = 4
	CmdEdge          Command = 5
	CmdDestroy       Command = 6
	// CmdGossip is a circuit-less message between two relays on their link
	// (circ id 0): the share-chain's block gossip (spec §2.5).
	CmdGossip Command = 7
)

// Known reports whether c is a command this version understands.
func (c Command) Known() bool { return c <= CmdGossip }

func (c Command) String() string {
	switch c {
	case CmdPadding:
		return "PADDING"
	case CmdCreate:
		return "CREATE"
	case CmdCreated:
		return "CREATED"
	case CmdRelayForward:
		return "RELAY_FORWARD"
	case CmdRelayBackward:
		return "RELAY_BACKWARD"
	case CmdEdge:
		return "EDGE"
	case CmdDestroy:
		return "DESTROY"
	case CmdGossip:
		return "GOSSIP"
	}
	return fmt.Sprintf("CMD(%d)", uint8(c))
}

// Reason is the one-byte payload of a DESTROY cell (spec §2.4).
type Reason uint8

// Destroy reasons.
const (
	ReasonNone          Reason = 0 // requested by the client or the local handler
	ReasonProtocol      Reason = 1 // protocol violation, including failed authentication
	ReasonInternal      Reason = 2
	ReasonResourceLimit Reason = 3 // a limit was hit: circuits, queue, window
	ReasonConnectFailed Reason = 4 // the next link could not be opened
	ReasonDestroyed     Reason = 5 // the circuit was destroyed further along
	ReasonLinkClosed    Reason = 6
	ReasonTimeout       Reason = 7 // idle timeout
	ReasonHandshake     Reason = 8 // the onion handshake failed
)

func (r Reason) String() string {
	switch r {
	case ReasonNone:
		return "none"
	case ReasonProtocol:
		return "protocol"
	case ReasonInternal:
		return "internal"
	case ReasonResourceLimit:
		return "resource-limit"
	case ReasonConnectFailed:
		return "connect-failed"
	case ReasonDestroyed:
		return "destroyed"
	case ReasonLinkClosed:
		return "link-closed"
	case ReasonTimeout:
		return "timeout"
	case ReasonHandshake:
		return "handshake"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Errors returned by Decode. Callers count them; they never travel far.
var (
	ErrFrameSize = errors.New("cell: frame is not a size class")
	ErrLength    = errors.New("cell: length field exceeds the class")
	ErrPadding   = errors.New("cell: non-zero padding")
	ErrTooLarge  = errors.New("cell: payload too large")
)

// Cell is one decoded cell. Payload aliases the frame it was decoded from.
type Cell struct {
	CircID  uint32
	Cmd     Command
	Payload []byte
}

// Capacity returns the payload capacity of a class, or 0 if class is not one.
func Capacity(class int) int {
	switch class {
	case ClassSmall, ClassMedium, ClassLarge:
		return class - HeaderLen
	}
	return 0
}

// ClassFor returns the smallest class whose payload capacity is at least n,
// or 0 if n exceeds MaxPayload.
func ClassFor(n int) int {
	for _, c := range Classes {
		if n <= c-HeaderLen {
			return c
		}
	}
	return 0
}

// CellCost is the weight in bytes the reference senders give each cell,
// on top of its size, when they cut a message into fragments (spec §4.4):
// the per-cell work of sealing, framing and switching it.
const CellCost = 2048

// Fragment returns the class of the next fragment of a message with n bytes
// left to send and the number of those bytes it carries; room(class) is how
// many message bytes a fragment of the class holds. Each cell weighs its
// size plus CellCost; Fragment takes the class whose full fragments, with
// the cheapest way of sending what is left after them, weigh least (the
// smaller class on a tie). So a 5 KB message goes as two medium cells
// rather than one large cell padded to 63.5 KB, and a long one in large
// cells with its tail in the fitting class (spec §4.4).
func Fragment(n int, room func(class int) int) (class, take int) {
	// uniform is the weight of sending m bytes in cells of one class only.
	uniform := func(m int) int {
		w := -1
		for _, cl := range Classes {
			if r := room(cl); r > 0 {
				if c := max(1, (m+r-1)/r) * (cl + CellCost); w < 0 || c < w {
					w = c
				}
			}
		}
		return w
	}
	best := -1
	for _, cl := range Classes {
		r := room(cl)
		if r <= 0 {
			continue
		}
		cost := cl + CellCost
		if n > r {
			full := n / r
			cost = full * (cl + CellCost)
			if rest := n - full*r; rest > 0 {
				cost += uniform(rest)
			}
		}
		if best < 0 || cost < best {
			best, class, take = cost, cl, min(n, r)
		}
	}
	return class, take
}

// Decode parses one frame. The frame must be exactly one size class long, the
// length field must fit, and the padding must be zero. Unknown commands are
// returned as they are; the caller drops them (spec §2.2).
func Decode(frame []byte) (Cell, error) {
	capa := Capacity(len(frame))
	if capa == 0 {
		return Cell{}, fmt.Errorf("%w: %d bytes", ErrFrameSize, len(frame))
	}
	n := int(binary.BigEndian.Uint16(frame[5:7]))
	if n > capa {
		return Cell{}, fmt.Errorf("%w: %d > %d", ErrLength, n, capa)
	}
	for _, b := range frame[HeaderLen+n:] {
		if b != 0 {
			return Cell{}, ErrPadding
		}
	}
	return Cell{
		CircID:  binary.BigEndian.Uint32(frame[0:4]),
		Cmd:     Command(frame[4]),
		Payload: frame[HeaderLen : HeaderLen+n],
	}, nil
}

// Encode returns the frame of c in the smallest class that holds its payload.
func Encode(c Cell) ([]byte, error) {
	class := ClassFor(len(c.Payload))
	if class == 0 {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(c.Payload))
	}
	return EncodeClass(c, class)
}

// EncodeClass returns the frame of c in the given class.
func EncodeClass(c Cell, class int) ([]byte, error) {
	capa := Capacity(class)
	if capa == 0 {
		return nil, fmt.Errorf("%w: %d", ErrFrameSize, class)
	}
	if len(c.Payload) > capa {
		return nil, fmt.Errorf("%w: %d bytes in class %d", ErrTooLarge, len(c.Payload), class)
	}
	f := make([]byte, class)
	PutHeader(f, c.CircID, c.Cmd, len(c.Payload))
	copy(f[HeaderLen:], c.Payload)
	return f, nil
}

// PutHeader writes a cell header into the first HeaderLen bytes of f. The
// caller has placed (or will place) the payload at f[HeaderLen:] and keeps the
// rest of the frame zero.
func PutHeader(f []byte, circID uint32, cmd Command, length int) {
	binary.BigEndian.PutUint32(f[0:4], circID)
	f[4] = byte(cmd)
	binary.BigEndian.PutUint16(f[5:7], uint16(length))
}

// Destroy returns a DESTROY frame for circID.
func Destroy(circID uint32, r Reason) []byte {
	f := make([]byte, ClassSmall)
	PutHeader(f, circID, CmdDestroy, 1)
	f[HeaderLen] = byte(r)
	return f
}
