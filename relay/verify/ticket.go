package verify

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Ticket is what a verifier needs to re-execute one committed step (spec/11
// §3): the hop's signed commitment and its inputs for the whole session
// prefix, step by step, as the hop received them. A ticket whose
// re-execution does not give the committed output is a fraud proof
// (spec/11 §5): the same bytes.
//
// Encoding:
//
//	version     u8   1
//	commit len  u16
//	commitment  commit len (Commitment)
//	dim         u32  elements per input row; 0 for token input
//	steps       u32  1..MaxTicketSteps
//	per step:   start u32 ‖ count u32 ‖ data (count × dim × size, or
//	            count × 4 for tokens, in the commitment's input kind)
//
// The steps tile [0, commitment start + count): the first starts at 0,
// each where the previous ended, and the last is the committed step.
//
// Version 2 (a whole-session ticket, spec/11 §3.2) adds, after the
// commitment, the hop's commitments to earlier steps of the same session:
//
//	checks      u16  0..MaxTicketSteps-1
//	per check:  len u16 ‖ commitment
//
// each of the same binding (model, range, kinds, nonce, identity) as the
// last, to a step of the tiling, in increasing order. Re-execution checks
// every one of them.
type Ticket struct {
	Commitment *Commitment
	// Checks are the commitments to earlier steps checked too (version
	// 2); nil in a version-1 ticket.
	Checks []*Commitment
	Dim    int
	Steps  []Input
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
	ticketVersion = 1
	// ticketVersion2 carries Checks.
	ticketVersion2 = 2
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
	if t.Checks == nil {
		dst = append(dst, ticketVersion)
	} else {
		dst = append(dst, ticketVersion2)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(c)))
	dst = append(dst, c...)
	if t.Checks != nil {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(t.Checks)))
		for _, k := range t.Checks {
			kb := k.Append(nil)
			dst = binary.BigEndian.AppendUint16(dst, uint16(len(kb)))
			dst = append(dst, kb...)
		}
	}
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
	if len(b) < 3 || (b[0] != ticketVersion && b[0] != ticketVersion2) {
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
	var checks []*Commitment
	if b[0] == ticketVersion2 {
		if checks, p, err = decodeChecks(c, p); err != nil {
			return nil, err
		}
	}
	if len(p) < 8 {
		return nil, malformed("ticket", "truncated after the commitments")
	}
	t := &Ticket{Commitment: c, Checks: checks, Dim: int(binary.BigEndian.Uint32(p))}
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
	// Each check is a step of the tiling (their starts increase, so a
	// binary search over the steps finds them).
	for _, k := range checks {
		i, ok := slices.BinarySearchFunc(t.Steps, k.Start, func(s Input, start int) int { return s.Start - start })
		if !ok || t.Steps[i].Count != k.Count {
			return nil, malformed("ticket", "checked step [%d,+%d) is no step of the ticket", k.Start, k.Count)
		}
	}
	return t, nil
}

// decodeChecks parses a version-2 ticket's earlier commitments: each of
// c's binding, in increasing order of start, before c's step.
func decodeChecks(c *Commitment, p []byte) ([]*Commitment, []byte, error) {
	if len(p) < 2 {
		return nil, nil, malformed("ticket", "no check count")
	}
	n := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if n >= MaxTicketSteps || n*(2+commitFixed) > len(p) {
		return nil, nil, malformed("ticket", "%d checks in %d bytes", n, len(p))
	}
	checks := make([]*Commitment, 0, n)
	next := 0
	for i := range n {
		if len(p) < 2 {
			return nil, nil, malformed("ticket", "check %d truncated", i)
		}
		l := int(binary.BigEndian.Uint16(p))
		if len(p) < 2+l {
			return nil, nil, malformed("ticket", "check %d truncated", i)
		}
		k, err := DecodeCommitment(p[2 : 2+l])
		if err != nil {
			return nil, nil, err
		}
		p = p[2+l:]
		if !k.sameBinding(c) || k.Start < next || k.Start+k.Count > c.Start {
			return nil, nil, malformed("ticket", "check %d [%d,+%d) of another session or out of order", i, k.Start, k.Count)
		}
		next = k.Start + k.Count
		checks = append(checks, k)
	}
	return checks, p, nil
}

// sameBinding reports whether k and c bind the same session of the same
// hop: model, range, kinds, nonce and identity.
func (k *Commitment) sameBinding(c *Commitment) bool {
	return k.ModelID == c.ModelID && k.First == c.First && k.Last == c.Last && k.InKind == c.InKind &&
		k.OutKind == c.OutKind && k.Nonce == c.Nonce && k.Identity == c.Identity
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
