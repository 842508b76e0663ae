package cell

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A relay message fragment is the innermost plaintext of a relay cell, after
// every onion layer is removed (spec §4):
//
//	kind     1 byte
//	flags    1 byte   bit 0: MORE (another fragment of this message follows)
//	length   2 bytes  big-endian, number of data bytes
//	data     length bytes
//	padding  zero bytes up to the end of the layer plaintext
//
// Messages longer than one fragment are split into consecutive fragments of
// one kind; the fragments of one message are contiguous in their stream (one
// stream per hop and direction), so no message id is needed.

// RelayHeaderLen is the length of a relay message fragment header.
const RelayHeaderLen = 4

// MaxMessage is the largest relay or edge message, in data bytes.
const MaxMessage = 1 << 20

// Flow-control parameters (spec §6): windows count the cell class bytes of
// DATA fragments.
const (
	// Window is the initial send credit, per hop and direction.
	Window = 2 << 20
	// SendmeIncrement is how much a receiver consumes before it returns credit.
	SendmeIncrement = 512 << 10
)

// Kind says what a relay message is.
type Kind uint8

// Relay message kinds.
const (
	KindData         Kind = 1 // application message for or from the hop's handler
	KindExtend       Kind = 2 // client → last hop: extend the circuit
	KindExtended     Kind = 3 // last hop → client: the new hop answered
	KindExtendFailed Kind = 4 // last hop → client: extending failed; 1-byte Reason
	KindSendme       Kind = 5 // credit: 4-byte big-endian byte count
	KindTruncated    Kind = 6 // hop → client: the hop tore the circuit down; 1-byte Reason
	KindPadding      Kind = 7 // either way: dropped by its receiver; u32 echo, then filler
	// kindEdge is never on the wire as a relay kind; edge fragments use it in a
	// Reassembler.
	kindEdge Kind = 255
)

const flagMore = 0x01

// RelayMsg is a decoded relay message fragment. Data aliases the input.
type RelayMsg struct {
	Kind Kind
	More bool
	Data []byte
}

// ErrRelayMsg is wrapped by every relay message decoding error.
var ErrRelayMsg = errors.New("cell: bad relay message")

// ParseRelayMsg decodes a fragment from a layer plaintext p. Unknown flag bits
// are ignored; unknown kinds are returned for the caller to drop.
func ParseRelayMsg(p []byte) (RelayMsg, error) {
	if len(p) < RelayHeaderLen {
		return RelayMsg{}, fmt.Errorf("%w: %d bytes", ErrRelayMsg, len(p))
	}
	n := int(binary.BigEndian.Uint16(p[2:4]))
	if n > len(p)-RelayHeaderLen {
		return RelayMsg{}, fmt.Errorf("%w: length %d exceeds %d", ErrRelayMsg, n, len(p)-RelayHeaderLen)
	}
	return RelayMsg{Kind: Kind(p[0]), More: p[1]&flagMore != 0, Data: p[RelayHeaderLen : RelayHeaderLen+n]}, nil
}

// PutRelayMsg writes a fragment into dst, which is the whole layer plaintext
// region: header, data, and zero padding to len(dst). It reports false if the
// data does not fit.
func PutRelayMsg(dst []byte, kind Kind, more bool, data []byte) bool {
	if len(dst) < RelayHeaderLen+len(data) {
		return false
	}
	dst[0] = byte(kind)
	dst[1] = 0
	if more {
		dst[1] = flagMore
	}
	binary.BigEndian.PutUint16(dst[2:4], uint16(len(data)))
	n := copy(dst[RelayHeaderLen:], data)
	clear(dst[RelayHeaderLen+n:])
	return true
}

// Sendme encodes a SENDME body acknowledging n bytes.
func Sendme(n uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return b[:]
}

// ParseSendme decodes a SENDME body.
func ParseSendme(b []byte) (uint32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("%w: SENDME body is %d bytes", ErrRelayMsg, len(b))
	}
	return binary.BigEndian.Uint32(b), nil
}

// maxParts bounds the fragments of one message that AddEdgeOwned holds: a
// sender fills its cells, so a message of MaxMessage bytes has about 2,100
// fragments in small cells and 17 in large ones.
const maxParts = MaxMessage / 256

// reassemblyMin is the first buffer of a message of several fragments.
const reassemblyMin = 64 << 10

// ErrReassembly is wrapped by reassembly errors; they are protocol violations.
var ErrReassembly = errors.New("cell: reassembly")

// Reassembler joins the fragments of one stream into messages. The zero value
// is ready to use and enforces MaxMessage.
type Reassembler struct {
	active bool
	kind   Kind
	buf    []byte   // Add: the fragments so far
	parts  [][]byte // AddEdgeOwned: the fragments so far, not copied
	frames [][]byte // AddEdgeFrame: the frames parts lie in, freed once joined
	size   int      // bytes held
}

// Add takes the next fragment. When it completes a message, Add returns it
// with done set; the returned slice is the caller's. A fragment of another kind
// in the middle of a message, or a message over MaxMessage, is an error.
// Add copies data: the caller may reuse it.
func (r *Reassembler) Add(kind Kind, more bool, data []byte) (msg []byte, done bool, err error) {
	if len(r.parts) > 0 {
		r.Reset()
		return nil, false, fmt.Errorf("%w: Add after AddEdgeOwned", ErrReassembly)
	}
	if err := r.check(kind, data); err != nil {
		return nil, false, err
	}
	if !r.active && !more {
		return append(newMessage(len(data)), data...), true, nil
	}
	r.active, r.kind = true, kind
	if need := len(r.buf) + len(data); need > cap(r.buf) {
		// Double (from 64 KiB, up to MaxMessage): append's growth of a
		// large slice by a quarter copies a 1 MiB message about four
		// times over as its cells arrive, and leaves as much garbage.
		// The buffers come from the free list and the outgrown one goes
		// back to it (r alone holds it).
		c := min(max(2*cap(r.buf), need, reassemblyMin), MaxMessage)
		old := r.buf
		r.buf = append(newMessage(c), old...)
		FreeMessage(old)
	}
	r.buf = append(r.buf, data...)
	r.size = len(r.buf)
	if more {
		return nil, false, nil
	}
	msg = r.buf
	r.Reset()
	return msg, true, nil
}

// check refuses a fragment of another kind inside a message and a message
// over MaxMessage; either resets r.
func (r *Reassembler) check(kind Kind, data []byte) error {
	if r.active && kind != r.kind {
		r.Reset()
		return fmt.Errorf("%w: kind %d inside a kind %d message", ErrReassembly, kind, r.kind)
	}
	if r.size+len(data) > MaxMessage {
		r.Reset()
		return fmt.Errorf("%w: message over %d bytes", ErrReassembly, MaxMessage)
	}
	return nil
}

// Pending reports how many bytes of an unfinished message are held.
func (r *Reassembler) Pending() int { return r.size }

// Reset drops any unfinished message.
func (r *Reassembler) Reset() {
	clear(r.frames)
	r.active, r.kind, r.buf, r.parts, r.frames, r.size = false, 0, nil, nil, r.frames[:0], 0
}

// AddEdge is Add for edge fragments.
func (r *Reassembler) AddEdge(more bool, data []byte) ([]byte, bool, error) {
	return r.Add(kindEdge, more, data)
}

// AddEdgeOwned is AddEdge for a caller that hands data over: r keeps it
// until the message is whole and the caller must not touch it again. A
// message of one fragment is data itself, and one of several is joined
// once, at its end (a party's PREP crosses as a megabyte of 64 KB cells; its
// peer's openings as one cell per round), into a buffer of a power of two
// that may have been used before (FreeMessage).
func (r *Reassembler) AddEdgeOwned(more bool, data []byte) ([]byte, bool, error) {
	return r.AddEdgeFrame(more, data, nil)
}

// AddEdgeFrame is AddEdgeOwned for data that lies in frame, a cell the
// caller hands over with it: once data has been copied out (joined with
// the message's other fragments, or copied because it fills little of its
// buffer), frame goes back to the free list (FreeFrame). A message of one
// fragment is data itself, which keeps frame. frame may be nil.
func (r *Reassembler) AddEdgeFrame(more bool, data, frame []byte) ([]byte, bool, error) {
	if len(r.buf) > 0 {
		r.Reset()
		return nil, false, fmt.Errorf("%w: AddEdgeOwned after Add", ErrReassembly)
	}
	if err := r.check(kindEdge, data); err != nil {
		return nil, false, err
	}
	// A fragment is kept only where it fills most of its buffer: a sender
	// that put a few bytes in each large cell would otherwise make r hold
	// a 64 KB frame for every few bytes it counts. Such fragments are
	// copied, and a message may have at most maxParts of them.
	if 2*len(data) < cap(data) {
		data = append([]byte(nil), data...)
		FreeFrame(frame)
		frame = nil
	}
	if !r.active && !more {
		return data, true, nil
	}
	if len(r.parts) >= maxParts {
		r.Reset()
		return nil, false, fmt.Errorf("%w: message of over %d fragments", ErrReassembly, maxParts)
	}
	r.active, r.kind = true, kindEdge
	r.parts = append(r.parts, data)
	if frame != nil {
		r.frames = append(r.frames, frame)
	}
	r.size += len(data)
	if more {
		return nil, false, nil
	}
	msg := newMessage(r.size)
	for _, p := range r.parts {
		msg = append(msg, p...)
	}
	for _, f := range r.frames {
		FreeFrame(f)
	}
	r.Reset()
	return msg, true, nil
}
