package link

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Handshake payload items (spec/01-link.md §4). Each item is
//
//	type    1 byte
//	length  2 bytes
//	value   length bytes
//
// Unknown types are skipped, so later versions can add items; a known type
// seen twice or with a bad length makes the payload invalid.
const (
	itemVersions = 0x01 // value: n × 2-byte version, 1 ≤ n ≤ maxVersions
	itemChosen   = 0x02 // value: 2-byte version chosen by the responder, 0 for none
	itemCert     = 0x03 // value: a relay/keys link certificate
	// itemDescriptor: the responder's signed relay descriptor, sent only by
	// a bridge to a client, which has no other way to learn an unlisted
	// bridge's onion keys (spec/01-link.md §4).
	itemDescriptor = 0x04
	itemPadding    = 0x7f // value: ignored

	maxVersions = 16
)

// ErrBadPayload is returned for a handshake payload that does not parse.
var ErrBadPayload = errors.New("link: bad handshake payload")

// payload is a decoded handshake payload.
type payload struct {
	Versions   []uint16
	Chosen     uint16
	HasChosen  bool
	Cert       []byte
	Descriptor []byte
}

// encode returns the TLV form of p. Empty fields are omitted.
func (p *payload) encode() []byte {
	var out []byte
	add := func(t byte, v []byte) {
		out = append(out, t, byte(len(v)>>8), byte(len(v)))
		out = append(out, v...)
	}
	if len(p.Versions) > 0 {
		v := make([]byte, 0, 2*len(p.Versions))
		for _, x := range p.Versions {
			v = binary.BigEndian.AppendUint16(v, x)
		}
		add(itemVersions, v)
	}
	if p.HasChosen {
		add(itemChosen, binary.BigEndian.AppendUint16(nil, p.Chosen))
	}
	if p.Cert != nil {
		add(itemCert, p.Cert)
	}
	if p.Descriptor != nil {
		add(itemDescriptor, p.Descriptor)
	}
	return out
}

// parsePayload decodes a handshake payload. It never panics and never
// allocates more than len(b).
func parsePayload(b []byte) (*payload, error) {
	p := &payload{}
	var seen [256]bool
	for len(b) > 0 {
		if len(b) < 3 {
			return nil, fmt.Errorf("%w: truncated item header", ErrBadPayload)
		}
		t, n := b[0], int(binary.BigEndian.Uint16(b[1:3]))
		b = b[3:]
		if n > len(b) {
			return nil, fmt.Errorf("%w: item %#x length %d exceeds %d remaining", ErrBadPayload, t, n, len(b))
		}
		v := b[:n]
		b = b[n:]
		if t != itemPadding {
			if seen[t] {
				return nil, fmt.Errorf("%w: duplicate item %#x", ErrBadPayload, t)
			}
			seen[t] = true
		}
		switch t {
		case itemVersions:
			if n == 0 || n%2 != 0 || n/2 > maxVersions {
				return nil, fmt.Errorf("%w: versions item of %d bytes", ErrBadPayload, n)
			}
			for i := 0; i < n; i += 2 {
				p.Versions = append(p.Versions, binary.BigEndian.Uint16(v[i:]))
			}
		case itemChosen:
			if n != 2 {
				return nil, fmt.Errorf("%w: chosen-version item of %d bytes", ErrBadPayload, n)
			}
			p.Chosen, p.HasChosen = binary.BigEndian.Uint16(v), true
		case itemCert:
			p.Cert = append([]byte(nil), v...)
		case itemDescriptor:
			p.Descriptor = append([]byte(nil), v...)
		}
	}
	return p, nil
}

// chooseVersion returns the highest version in both lists, or 0.
func chooseVersion(ours, theirs []uint16) uint16 {
	var best uint16
	for _, a := range ours {
		for _, b := range theirs {
			if a == b && a > best {
				best = a
			}
		}
	}
	return best
}
