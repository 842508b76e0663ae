package verify

import (
	"encoding/binary"
)

// PartyTicket is what a verifier needs to re-execute one MPC party's side
// of a confidential session over a window of steps [t0, t], t the
// committed step (spec/11 §7.4): the party's signed commitment of step t;
// for every step of the session, the step's record (the PartyStep the party
// signed, less the signature: the chain over the records is the
// commitment's); for the steps before the window, the cache rows the party
// appended in them (the STATE messages, opened and masks, whose hashes it
// signed in the records), from which the verifier builds the party as it
// was at t0; and for the window's steps the party's view: its input (the
// client's MPC_INPUT at stage 1, else the two RESHARE pieces by channel),
// its PREP, and the MPC_PEER openings it received from the other party, in
// order; and, at a stage before the last, the two RESHARE pieces it sent
// (they carry its fresh mask, which no re-execution can reproduce; their
// sum is its output share).
//
// Encoding:
//
//	version     u8   5
//	commit len  u16
//	commitment  commit len (PartyCommitment, role A or B)
//	steps       u32  commitment step + 1, at most MaxTicketSteps
//	window      u32  t0, at most the commitment step
//	per step < t0: record  12 + 9 × 32 (PartyStep without its signature)
//	               opened  len u32 ‖ body (mpc STATE, kind opened)
//	               masks   len u32 ‖ body (mpc STATE, kind masks)
//	per step ≥ t0: record  12 + 9 × 32
//	               inputs   u8 (1 at stage 1, else 2) ‖ inputs × (len u32 ‖ body)
//	               prep     len u32 ‖ body
//	               openings u32 ‖ openings × (len u32 ‖ body)
//	               outputs  u8 (0 at the last stage, else 2) ‖ outputs × (len u32 ‖ body)
//
// The records are steps 0..n−1, each starting where the previous ended;
// the last equals the commitment's step. Bodies alias the decoded bytes.
type PartyTicket struct {
	Commitment *PartyCommitment
	Prior      []PartyState // steps 0..t0−1
	Steps      []PartyView  // steps t0..t, at least one
}

// Window returns t0, the first step re-executed.
func (t *PartyTicket) Window() int { return len(t.Prior) }

// PartyState is one step before a party ticket's window: its record and
// the cache rows the party appended in it.
type PartyState struct {
	Record PartyStep // Sig unused (zero)
	Opened []byte    // mpc STATE, kind opened
	Masks  []byte    // mpc STATE, kind masks, of the party
}

// PartyView is one step of a party ticket's window.
type PartyView struct {
	Record PartyStep // Sig unused (zero)
	In     [][]byte  // MPC_INPUT, or RESHARE by channel (0 same side, 1 other)
	Prep   []byte
	Peer   [][]byte // MPC_PEER bodies received, in order
	Out    [][]byte // RESHARE pieces sent by channel; none at the last stage
}

// PartyTicketVersion is the first byte of a party ticket; anonymous tickets
// (Ticket) have version 3. Version 4 (whole views from step 0, party
// commitments of version 2) is refused.
const PartyTicketVersion = 5

// partyRecordSize is the encoded size of a step record.
const partyRecordSize = PartyStepSize - 64

// IsPartyTicket reports whether b is (by its version byte) a party ticket.
func IsPartyTicket(b []byte) bool { return len(b) > 0 && b[0] == PartyTicketVersion }

// Append appends the encoding.
func (t *PartyTicket) Append(dst []byte) []byte {
	c := t.Commitment.Append(nil)
	dst = append(dst, PartyTicketVersion)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(c)))
	dst = append(dst, c...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(t.Prior)+len(t.Steps)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(t.Prior)))
	list := func(dst []byte, bs ...[]byte) []byte {
		for _, b := range bs {
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
			dst = append(dst, b...)
		}
		return dst
	}
	for _, s := range t.Prior {
		dst = list(s.Record.appendRecord(dst), s.Opened, s.Masks)
	}
	for _, s := range t.Steps {
		dst = s.Record.appendRecord(dst)
		dst = list(append(dst, byte(len(s.In))), s.In...)
		dst = list(dst, s.Prep)
		dst = list(binary.BigEndian.AppendUint32(dst, uint32(len(s.Peer))), s.Peer...)
		dst = list(append(dst, byte(len(s.Out))), s.Out...)
	}
	return dst
}

// Size returns the encoded size.
func (t *PartyTicket) Size() int {
	n := 3 + partyCommitFixed + len(t.Commitment.ModelID) + 8
	for _, s := range t.Prior {
		n += PriorSize(len(s.Opened), len(s.Masks))
	}
	for i := range t.Steps {
		n += t.Steps[i].Size()
	}
	return n
}

// PriorSize is the encoded size of a step before the window whose STATE
// messages have these sizes.
func PriorSize(opened, masks int) int { return partyRecordSize + 8 + opened + masks }

// Size is the encoded size of a window step.
func (s *PartyView) Size() int {
	n := partyRecordSize + 1 + 4 + len(s.Prep) + 4 + 1
	for _, bs := range [][][]byte{s.In, s.Peer, s.Out} {
		for _, b := range bs {
			n += 4 + len(b)
		}
	}
	return n
}

// partyReader reads a party ticket's fields, remembering the first error.
type partyReader struct {
	p   []byte
	err error
}

func (r *partyReader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = malformed("party ticket", format, a...)
	}
}

func (r *partyReader) take(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.p)) {
		r.fail("%s: %d bytes, %d left", what, n, len(r.p))
		return nil
	}
	b := r.p[:n:n]
	r.p = r.p[n:]
	return b
}

func (r *partyReader) u8(what string) int {
	b := r.take(1, what)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (r *partyReader) u32(what string) uint64 {
	b := r.take(4, what)
	if b == nil {
		return 0
	}
	return uint64(binary.BigEndian.Uint32(b))
}

func (r *partyReader) body(what string) []byte { return r.take(r.u32(what), what) }

// list reads n bodies; every body costs at least its 4-byte length, so n
// is checked against what is left before anything is allocated.
func (r *partyReader) list(n uint64, what string) [][]byte {
	if r.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(r.p))/4 {
		r.fail("%d %s in %d bytes", n, what, len(r.p))
		return nil
	}
	out := make([][]byte, 0, n)
	for range n {
		out = append(out, r.body(what))
	}
	return out
}

// DecodePartyTicket parses a party ticket. The bodies alias b. It checks
// the layout, that the records are the session's steps in order and that
// the last is the commitment's, not the signature, the chain or the hashes
// (CheckParty does). It allocates at most in proportion to len(b).
func DecodePartyTicket(b []byte) (*PartyTicket, error) {
	if len(b) > MaxTicketBytes {
		return nil, malformed("party ticket", "%d bytes, at most %d", len(b), MaxTicketBytes)
	}
	if len(b) < 3 || b[0] != PartyTicketVersion {
		return nil, malformed("party ticket", "header")
	}
	cl := int(binary.BigEndian.Uint16(b[1:]))
	if len(b) < 3+cl+4 {
		return nil, malformed("party ticket", "%d bytes with a commitment of %d", len(b), cl)
	}
	c, err := DecodePartyCommitment(b[3 : 3+cl])
	if err != nil {
		return nil, err
	}
	if c.Role != PartyA && c.Role != PartyB {
		return nil, malformed("party ticket", "commitment of a %v", c.Role)
	}
	r := &partyReader{p: b[3+cl:]}
	n, t0 := r.u32("steps"), r.u32("window")
	// A step before the window costs at least its record and two length
	// fields, one in it its record and five.
	if r.err != nil || n != uint64(c.Step)+1 || n > MaxTicketSteps || t0 >= n ||
		t0*(partyRecordSize+8)+(n-t0)*(partyRecordSize+14) > uint64(len(r.p)) {
		return nil, malformed("party ticket", "%d steps from %d for a commitment of step %d in %d bytes", n, t0, c.Step, len(r.p))
	}
	wantIn := 2
	if c.First == 0 {
		wantIn = 1
	}
	t := &PartyTicket{Commitment: c, Prior: make([]PartyState, 0, t0), Steps: make([]PartyView, 0, n-t0)}
	next := 0
	for i := range int(n) {
		rec := r.take(partyRecordSize, "record")
		if r.err != nil {
			break
		}
		s := decodeRecord(rec)
		if err := s.check(); err != nil {
			return nil, err
		}
		if s.Step != i || s.Start != next {
			return nil, malformed("party ticket", "record %d is of step %d at %d, expected start %d", i, s.Step, s.Start, next)
		}
		next = s.Start + s.Count
		if i < int(t0) {
			t.Prior = append(t.Prior, PartyState{Record: *s, Opened: r.body("opened rows"), Masks: r.body("mask rows")})
			if r.err != nil {
				return nil, r.err
			}
			continue
		}
		v := PartyView{Record: *s}
		if k := r.u8("inputs"); k != wantIn && r.err == nil {
			return nil, malformed("party ticket", "step %d: %d inputs, want %d", i, k, wantIn)
		}
		v.In = r.list(uint64(wantIn), "inputs")
		v.Prep = r.body("PREP")
		v.Peer = r.list(r.u32("openings"), "openings")
		k := r.u8("outputs")
		if k != 0 && k != 2 || len(t.Steps) > 0 && k != len(t.Steps[0].Out) {
			r.fail("step %d: %d outputs", i, k)
		}
		v.Out = r.list(uint64(k), "outputs")
		if r.err != nil {
			return nil, r.err
		}
		t.Steps = append(t.Steps, v)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.p) != 0 {
		return nil, malformed("party ticket", "%d trailing bytes", len(r.p))
	}
	last := t.Steps[len(t.Steps)-1].Record
	last.Sig = c.Sig
	if last != c.PartyStep {
		return nil, malformed("party ticket", "the last record is not the committed step")
	}
	return t, nil
}
