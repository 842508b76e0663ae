package hop

import (
	"context"
	"encoding/binary"
)

// Paying a hop inside its own onion layer (spec/03-compute.md §3.15,
// spec/12-economy.md §2.6):
//
//	0x0d PAY  client → hop  count u8 (1..MaxPayEntries) ‖ count × entry
//	entry:    units u32 ‖ credit length u16 (1..MaxPayCredit) ‖ credit ‖ spend signature (64)
//
// The hop hands each entry to its Payments (the relay's share-chain node),
// which checks the credit, the spend signature for this relay and the
// price, and redeems it; each redeemed entry adds its units to the
// session's balance. A compute hop then spends one unit per position it
// runs; when the network requires payment it refuses work the balance does
// not cover with ERROR payment-required, which ends the session.

// TypePay is PAY's message type.
const TypePay MsgType = 0x0d

// Limits of PAY.
const (
	// MaxPayEntries is the most entries one PAY carries.
	MaxPayEntries = 16
	// MaxPayCredit is the longest credit an entry carries (a credit
	// signed by a 4096-bit mint key, spec/12 §2.2, is 587 bytes).
	MaxPayCredit = 1024
	// PaySigLen is the length of a spend signature (Ed25519).
	PaySigLen = 64
)

// PayEntry is one credit spent to the hop for Units of work (spec/12 §2.5).
type PayEntry struct {
	Units    uint32
	Credit   []byte
	SpendSig []byte
}

// Pay is the PAY message.
type Pay struct {
	Entries []PayEntry
}

// Type implements Msg.
func (*Pay) Type() MsgType { return TypePay }

// Append implements Msg.
func (m *Pay) Append(dst []byte) []byte {
	dst = append(dst, byte(TypePay), byte(len(m.Entries)))
	for _, e := range m.Entries {
		dst = binary.BigEndian.AppendUint32(dst, e.Units)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(e.Credit)))
		dst = append(dst, e.Credit...)
		dst = append(dst, e.SpendSig...)
	}
	return dst
}

func decodePay(b []byte) (*Pay, error) {
	if len(b) < 2 {
		return nil, malformed(TypePay, "%d bytes", len(b))
	}
	n := int(b[1])
	if n < 1 || n > MaxPayEntries {
		return nil, malformed(TypePay, "%d entries, want 1..%d", n, MaxPayEntries)
	}
	m := &Pay{Entries: make([]PayEntry, 0, n)}
	p := b[2:]
	for range n {
		if len(p) < 6 {
			return nil, malformed(TypePay, "entry header cut short")
		}
		units := binary.BigEndian.Uint32(p)
		cl := int(binary.BigEndian.Uint16(p[4:]))
		p = p[6:]
		if cl < 1 || cl > MaxPayCredit {
			return nil, malformed(TypePay, "credit of %d bytes, want 1..%d", cl, MaxPayCredit)
		}
		if len(p) < cl+PaySigLen {
			return nil, malformed(TypePay, "entry cut short")
		}
		m.Entries = append(m.Entries, PayEntry{Units: units, Credit: p[:cl:cl], SpendSig: p[cl : cl+PaySigLen : cl+PaySigLen]})
		p = p[cl+PaySigLen:]
	}
	if len(p) != 0 {
		return nil, malformed(TypePay, "%d trailing bytes", len(p))
	}
	return m, nil
}

// Payments is what a hop asks about payment: the relay's share-chain node.
type Payments interface {
	// Redeem checks e (the credit, its spend signature for this relay and
	// e.Units, the relay's price) and redeems the credit durably; nil means
	// the work it pays for may be done. Its error is told to the client.
	Redeem(ctx context.Context, e PayEntry) error
	// Required reports whether the network requires payment for work
	// (the consensus parameter pay-required).
	Required() bool
}

// maxBalance bounds a session's paid-ahead balance (positions), so the
// sum of entries cannot overflow.
const maxBalance = 1 << 40

// pay redeems a PAY's entries in order; the balance grows by each redeemed
// entry. An entry that is refused stops the message (the later ones are
// not redeemed, so the client still holds them) with payment-refused.
func (ss *session) pay(m *Pay) error {
	pm := ss.svc.cfg.Payments
	if pm == nil {
		return coded(CodeUnsupported, "this relay takes no payments")
	}
	for i, e := range m.Entries {
		if err := pm.Redeem(ss.ctx, e); err != nil {
			return coded(CodePaymentRefused, "entry %d: %v", i, err)
		}
		ss.paid = min(ss.paid+uint64(e.Units), maxBalance)
	}
	return nil
}

// charge takes n positions of work from the session's balance; when the
// network requires payment and the balance does not cover them the work is
// refused (payment-required, fatal).
func (ss *session) charge(n int) error {
	pm := ss.svc.cfg.Payments
	if pm == nil || !pm.Required() {
		return nil
	}
	if uint64(n) > ss.paid {
		return coded(CodePaymentRequired, "%d positions of work, %d paid for", n, ss.paid)
	}
	ss.paid -= uint64(n)
	return nil
}
