package cell

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/unfed/unfed/relay/keys"
)

// Handshake bodies (spec §3.1, §5). CREATE and CREATED cell payloads, and the
// tail of EXTEND and the body of EXTENDED relay messages, are:
//
//	htype  2 bytes  handshake type (relay/onion)
//	hlen   2 bytes
//	hdata  hlen bytes
//
// An EXTEND message body is:
//
//	fingerprint  20 bytes  the next relay
//	nspec        1 byte    number of link specifiers, 1..MaxLinkSpecs
//	nspec times:
//	  tlen 1 byte | transport tlen bytes (e.g. "tcp", "obfs4")
//	  alen 1 byte | address alen bytes (host:port)
//	  link key 32 bytes (the relay's Noise static key)
//	  glen 2 bytes | args glen bytes (transport arguments, e.g. obfs4 cert=…)
//	htype 2 | hlen 2 | hdata
//
// Trailing bytes after hdata are ignored (room for later fields).

// Limits on EXTEND contents.
const (
	MaxLinkSpecs  = 8
	MaxLinkArgs   = 1024
	MaxHandshake  = 4096
	handshakeHead = 4
)

// ErrExtend is wrapped by every handshake body and EXTEND decoding error.
var ErrExtend = errors.New("cell: bad extend or handshake body")

// Handshake is a typed handshake body.
type Handshake struct {
	Type uint16
	Data []byte
}

// AppendHandshake appends the encoding of h.
func AppendHandshake(b []byte, h Handshake) ([]byte, error) {
	if len(h.Data) > MaxHandshake {
		return nil, fmt.Errorf("%w: handshake data %d bytes", ErrExtend, len(h.Data))
	}
	b = binary.BigEndian.AppendUint16(b, h.Type)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Data)))
	return append(b, h.Data...), nil
}

// ParseHandshake decodes a handshake body and returns the bytes after it.
func ParseHandshake(b []byte) (Handshake, []byte, error) {
	if len(b) < handshakeHead {
		return Handshake{}, nil, fmt.Errorf("%w: short handshake", ErrExtend)
	}
	t := binary.BigEndian.Uint16(b[0:2])
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n > MaxHandshake || n > len(b)-handshakeHead {
		return Handshake{}, nil, fmt.Errorf("%w: handshake length %d", ErrExtend, n)
	}
	return Handshake{Type: t, Data: b[handshakeHead : handshakeHead+n]}, b[handshakeHead+n:], nil
}

// LinkSpec says how to reach a relay over one transport.
type LinkSpec struct {
	Transport string   // transport name: tcp, quic, obfs4, or a managed PT name
	Addr      string   // host:port
	LinkKey   [32]byte // the relay's Noise static public key
	Args      string   // transport arguments, e.g. "cert=… iat-mode=0"
}

// Extend is a decoded EXTEND message.
type Extend struct {
	Fingerprint keys.Fingerprint
	Specs       []LinkSpec
	Handshake   Handshake
}

// AppendExtend appends the encoding of e.
func AppendExtend(b []byte, e Extend) ([]byte, error) {
	if len(e.Specs) == 0 || len(e.Specs) > MaxLinkSpecs {
		return nil, fmt.Errorf("%w: %d link specifiers", ErrExtend, len(e.Specs))
	}
	b = append(b, e.Fingerprint[:]...)
	b = append(b, byte(len(e.Specs)))
	for _, s := range e.Specs {
		if len(s.Transport) == 0 || len(s.Transport) > 255 || len(s.Addr) > 255 || len(s.Args) > MaxLinkArgs {
			return nil, fmt.Errorf("%w: link specifier field too long", ErrExtend)
		}
		b = append(b, byte(len(s.Transport)))
		b = append(b, s.Transport...)
		b = append(b, byte(len(s.Addr)))
		b = append(b, s.Addr...)
		b = append(b, s.LinkKey[:]...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(s.Args)))
		b = append(b, s.Args...)
	}
	return AppendHandshake(b, e.Handshake)
}

// ParseExtend decodes an EXTEND message body. The result aliases b.
func ParseExtend(b []byte) (Extend, error) {
	var e Extend
	if len(b) < keys.FingerprintLen+1 {
		return e, fmt.Errorf("%w: short extend", ErrExtend)
	}
	copy(e.Fingerprint[:], b)
	n := int(b[keys.FingerprintLen])
	b = b[keys.FingerprintLen+1:]
	if n == 0 || n > MaxLinkSpecs {
		return e, fmt.Errorf("%w: %d link specifiers", ErrExtend, n)
	}
	e.Specs = make([]LinkSpec, 0, n)
	for range n {
		var s LinkSpec
		var ok bool
		if s.Transport, b, ok = str8(b); !ok || s.Transport == "" {
			return e, fmt.Errorf("%w: transport", ErrExtend)
		}
		if s.Addr, b, ok = str8(b); !ok {
			return e, fmt.Errorf("%w: address", ErrExtend)
		}
		if len(b) < 32+2 {
			return e, fmt.Errorf("%w: link key", ErrExtend)
		}
		copy(s.LinkKey[:], b)
		g := int(binary.BigEndian.Uint16(b[32:34]))
		b = b[34:]
		if g > MaxLinkArgs || g > len(b) {
			return e, fmt.Errorf("%w: args length %d", ErrExtend, g)
		}
		s.Args, b = string(b[:g]), b[g:]
		e.Specs = append(e.Specs, s)
	}
	h, _, err := ParseHandshake(b)
	if err != nil {
		return e, err
	}
	e.Handshake = h
	return e, nil
}

func str8(b []byte) (string, []byte, bool) {
	if len(b) < 1 || int(b[0]) > len(b)-1 {
		return "", nil, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}
