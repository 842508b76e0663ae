package hop

import (
	"bytes"
	"encoding/binary"

	"github.com/unfed/unfed/relay/cell"
)

// The ticket submission messages of spec/11-verification.md §3.5, between a
// client and a relay with role verifier, the last hop of a circuit the
// client built for submitting:
//
//	0x0c TICKET     client → verifier  total u32 ‖ offset u32 ‖ data
//	0x89 TICKET_OK  verifier → client  (empty)
//
// A ticket (verify.Ticket encoding) is sent in fragments, in order; the
// verifier answers TICKET_OK once the last fragment is in and the ticket was
// queued, or ERROR.

// Message types of spec/11 §3.5.
const (
	TypeTicket   MsgType = 0x0c
	TypeTicketOK MsgType = 0x89
)

// ticketHeader is TICKET's type, total and offset.
const ticketHeader = 1 + 4 + 4

// MaxTicketFragment is the most ticket bytes one TICKET carries.
const MaxTicketFragment = cell.MaxMessage - ticketHeader

// Ticket is one fragment of a ticket: Data is the ticket's bytes at Offset;
// Total is the whole ticket's length.
type Ticket struct {
	Total  int
	Offset int
	Data   []byte
}

// Type implements Msg.
func (*Ticket) Type() MsgType { return TypeTicket }

// Append implements Msg.
func (m *Ticket) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeTicket))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Total))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Offset))
	return append(dst, m.Data...)
}

// TicketOK acknowledges a whole ticket.
type TicketOK struct{}

// Type implements Msg.
func (*TicketOK) Type() MsgType { return TypeTicketOK }

// Append implements Msg.
func (*TicketOK) Append(dst []byte) []byte { return append(dst, byte(TypeTicketOK)) }

// TicketFragments cuts an encoded ticket into TICKET messages.
func TicketFragments(b []byte) []*Ticket {
	var out []*Ticket
	for off := 0; off < len(b) || off == 0; off += MaxTicketFragment {
		end := min(off+MaxTicketFragment, len(b))
		out = append(out, &Ticket{Total: len(b), Offset: off, Data: b[off:end]})
		if end == len(b) {
			break
		}
	}
	return out
}

func decodeTicketMsg(t MsgType, b []byte) (Msg, error) {
	switch t {
	case TypeTicket:
		if len(b) < ticketHeader || len(b) > cell.MaxMessage {
			return nil, malformed(t, "%d bytes", len(b))
		}
		m := &Ticket{Total: int(binary.BigEndian.Uint32(b[1:])), Offset: int(binary.BigEndian.Uint32(b[5:])), Data: bytes.Clone(b[ticketHeader:])}
		if len(m.Data) == 0 || uint64(m.Offset)+uint64(len(m.Data)) > uint64(m.Total) {
			return nil, malformed(t, "%d bytes at %d of %d", len(m.Data), m.Offset, m.Total)
		}
		return m, nil
	case TypeTicketOK:
		if len(b) != 1 {
			return nil, malformed(t, "%d bytes", len(b))
		}
		return &TicketOK{}, nil
	}
	return nil, nil
}

// ticket takes one TICKET fragment (Deliver goroutine). Fragments come in
// order; the buffer never exceeds the sink's MaxTicket, so a client makes a
// verifier hold at most that per circuit.
func (ss *session) ticket(m *Ticket) error {
	sink := ss.svc.cfg.Tickets
	if sink == nil {
		return coded(CodeUnsupported, "this relay is no verifier")
	}
	if m.Total > sink.MaxTicket() {
		ss.tk = nil
		return coded(CodeCapacity, "ticket of %d bytes, at most %d", m.Total, sink.MaxTicket())
	}
	if m.Offset != len(ss.tk) || (ss.tk != nil && cap(ss.tk) != m.Total) {
		ss.tk = nil
		return coded(CodeBadMessage, "TICKET fragment at %d of %d out of order", m.Offset, m.Total)
	}
	if ss.tk == nil {
		ss.tk = make([]byte, 0, m.Total)
	}
	ss.tk = append(ss.tk, m.Data...)
	if len(ss.tk) < m.Total {
		return nil
	}
	b := ss.tk
	ss.tk = nil
	if err := sink.Accept(ss.c.ID(), b); err != nil {
		return coded(CodeCapacity, "%v", err)
	}
	return ss.send(&TicketOK{})
}
