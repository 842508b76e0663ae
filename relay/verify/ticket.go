package verify

import (
	"encoding/binary"
	"fmt"
)

// Ticket is what a verifier needs to re-execute a hop's session up to one
// committed step (spec/11 §3): the hop's signed commitment to that step and
// its inputs for the whole session prefix, step by step, as the hop
// received them. The commitment's input chain binds every input and its
// output chain every output of the prefix, so one re-execution checks
// every step against one signature. A ticket whose re-execution does not
// give the committed outputs is a fraud proof (spec/11 §5): the same bytes.
//
// Encoding:
//
//	version     u8   3
//	commit len  u16
//	commitment  commit len (Commitment)
//	dim         u32  elements per input row; 0 for token input
//	steps       u32  1..MaxTicketSteps
//	per step:   start u32 ‖ count u32 ‖ data (count × dim × size, or
//	            count × 4 for tokens, in the commitment's input kind)
//
// The steps tile [0, commitment start + count): the first starts at 0,
// each where the previous ended, and the last is the committed step.
// (Versions 1 and 2 carried commitments without an output chain, version 2
// one signed commitment per step; both are refused.)
type Ticket struct {
	Commitment *Commitment
	Dim        int
	Steps      []Input
}

// Input is one step's input as the hop received it, encoded in the
// commitment's input kind (hash.go).
type Input struct {
	Start int
	Count int
	Data  []byte
}

// Ticket limits (spec/11 §3.2).
const (
	ticketVersion = 3
	// MaxTicketBytes bounds an encoded ticket (and proof).
	MaxTicketBytes = 64 << 20
	// MaxTicketSteps bounds the steps of one ticket.
	MaxTicketSteps = 1 << 16
	// MaxDim bounds the row width of activation inputs.
	MaxDim = 1 << 16
)

// Append appends the encoding.
func (t *Ticket) Append(dst []byte) []byte {
	c := t.Commitment.Append(nil)
	dst = append(dst, ticketVersion)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(c)))
	dst = append(dst, c...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(t.Dim))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(t.Steps)))
	for _, s := range t.Steps {
		dst = binary.BigEndian.AppendUint32(dst, uint32(s.Start))
		dst = binary.BigEndian.AppendUint32(dst, uint32(s.Count))
		dst = append(dst, s.Data...)
	}
	return dst
}

// rowBytes is the encoded size of one position's input.
func rowBytes(k Kind, dim int) int {
	if k == KindTokens {
		return 4
	}
	return dim * k.elemSize()
}

// DecodeTicket parses a ticket. The inputs alias b. It checks the layout
// and the step tiling, not the signature or the hashes (Check does).
func DecodeTicket(b []byte) (*Ticket, error) {
	if len(b) > MaxTicketBytes {
		return nil, malformed("ticket", "%d bytes, at most %d", len(b), MaxTicketBytes)
	}
	if len(b) < 3 || b[0] != ticketVersion {
		return nil, malformed("ticket", "header")
	}
	cl := int(binary.BigEndian.Uint16(b[1:]))
	if len(b) < 3+cl+8 {
		return nil, malformed("ticket", "%d bytes with a commitment of %d", len(b), cl)
	}
	c, err := DecodeCommitment(b[3 : 3+cl])
	if err != nil {
		return nil, err
	}
	p := b[3+cl:]
	t := &Ticket{Commitment: c, Dim: int(binary.BigEndian.Uint32(p))}
	n := binary.BigEndian.Uint32(p[4:])
	p = p[8:]
	switch {
	case c.InKind == KindTokens && t.Dim != 0:
		return nil, malformed("ticket", "width %d with token input", t.Dim)
	case c.InKind != KindTokens && (t.Dim < 1 || t.Dim > MaxDim):
		return nil, malformed("ticket", "width %d", t.Dim)
	case n < 1 || n > MaxTicketSteps:
		return nil, malformed("ticket", "%d steps", n)
	case uint64(n)*8 > uint64(len(p)):
		return nil, malformed("ticket", "%d steps in %d bytes", n, len(p))
	}
	row := rowBytes(c.InKind, t.Dim)
	t.Steps = make([]Input, 0, n)
	next := 0
	for i := range n {
		if len(p) < 8 {
			return nil, malformed("ticket", "step %d truncated", i)
		}
		s := Input{Start: int(binary.BigEndian.Uint32(p)), Count: int(binary.BigEndian.Uint32(p[4:]))}
		p = p[8:]
		if s.Start != next || s.Count < 1 || s.Count > c.Start+c.Count-next {
			return nil, malformed("ticket", "step %d at [%d,+%d), expected start %d before %d", i, s.Start, s.Count, next, c.Start+c.Count)
		}
		size := uint64(s.Count) * uint64(row)
		if size > uint64(len(p)) {
			return nil, malformed("ticket", "step %d needs %d bytes, %d left", i, size, len(p))
		}
		s.Data, p = p[:size:size], p[size:]
		t.Steps = append(t.Steps, s)
		next = s.Start + s.Count
	}
	last := t.Steps[len(t.Steps)-1]
	switch {
	case len(p) != 0:
		return nil, malformed("ticket", "%d trailing bytes", len(p))
	case last.Start != c.Start || last.Count != c.Count:
		return nil, malformed("ticket", "last step [%d,+%d) is not the committed [%d,+%d)", last.Start, last.Count, c.Start, c.Count)
	}
	return t, nil
}

// NewTicket cuts prefix, the encoded inputs of positions [0, c.Start +
// c.Count) in c's input kind, into the steps that start at starts (the
// start of each of the hop's steps up to and including c's) and returns the
// ticket for c. dim is the row width (0 for token input).
func NewTicket(c *Commitment, dim int, starts []int, prefix []byte) (*Ticket, error) {
	row := rowBytes(c.InKind, dim)
	end := c.Start + c.Count
	if row == 0 || len(prefix) != end*row || len(starts) == 0 || starts[len(starts)-1] != c.Start {
		return nil, fmt.Errorf("verify: %d input bytes and %d steps for a step at [%d,+%d)", len(prefix), len(starts), c.Start, c.Count)
	}
	t := &Ticket{Commitment: c, Dim: dim}
	for i, s := range starts {
		e := end
		if i+1 < len(starts) {
			e = starts[i+1]
		}
		if s >= e || (i == 0 && s != 0) {
			return nil, fmt.Errorf("verify: step starts %v", starts)
		}
		t.Steps = append(t.Steps, Input{Start: s, Count: e - s, Data: prefix[s*row : e*row]})
	}
	return t, nil
}
