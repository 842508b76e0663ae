package onion

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/unfed/unfed/relay/cell"
)

// An onion layer (spec §4.1) is one AES-256-GCM seal of
//
//	flag  1 byte
//	body  the rest: the next layer's ciphertext, or a relay message fragment
//
// under one hop's key for one direction. The 96-bit nonce is implicit: four
// zero bytes and a big-endian 64-bit counter, starting at 0 and incremented by
// every seal or open, so a replayed, dropped or reordered cell fails to open.
// No additional data. A layer adds Overhead bytes.

// Overhead is the number of bytes one layer adds: the flag and the GCM tag.
const Overhead = 1 + 16

// Fragment returns the class of the next fragment of a relay message with n
// bytes left, to or from the hop at depth (1-based), and how many of them it
// carries: depth layers and the relay header leave the rest of a cell for
// data (spec §4.2, §4.4).
func Fragment(n, depth int) (class, take int) {
	return cell.Fragment(n, func(cl int) int { return cell.Capacity(cl) - Overhead*depth - cell.RelayHeaderLen })
}

// Flag says what a hop does with a layer's body.
type Flag uint8

// Layer flags. Forward layers carry Deliver or Pass; backward layers carry
// Origin or Wrapped.
const (
	// Deliver: the body is a relay message fragment for this hop.
	Deliver Flag = 1
	// Pass: the body is the next hop's layer; forward it.
	Pass Flag = 2
	// Origin: the body is a relay message fragment from this hop.
	Origin Flag = 3
	// Wrapped: the body is a later hop's backward layer.
	Wrapped Flag = 4
)

// ErrAuth is returned when a layer does not open: the circuit MUST be
// destroyed.
var ErrAuth = errors.New("onion: layer authentication failed")

// Layer is one direction of one hop's layer crypto. It is not safe for
// concurrent use: the caller serialises seals (and opens) in wire order.
type Layer struct {
	aead  cipher.AEAD
	ctr   uint64
	nonce [12]byte
}

// NewLayer returns a layer for key.
func NewLayer(key [32]byte) (*Layer, error) {
	b, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("onion: %w", err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("onion: %w", err)
	}
	return &Layer{aead: g}, nil
}

func (l *Layer) next() ([]byte, error) {
	if l.ctr == ^uint64(0) {
		return nil, errors.New("onion: layer counter exhausted")
	}
	binary.BigEndian.PutUint64(l.nonce[4:], l.ctr)
	l.ctr++
	return l.nonce[:], nil
}

// Seal sets buf[0] to flag and encrypts buf in place; it returns the layer,
// len(buf)+16 bytes long, sharing buf's storage when cap(buf) allows.
func (l *Layer) Seal(buf []byte, flag Flag) ([]byte, error) {
	if len(buf) < 1 {
		return nil, errors.New("onion: empty layer")
	}
	n, err := l.next()
	if err != nil {
		return nil, err
	}
	buf[0] = byte(flag)
	return l.aead.Seal(buf[:0], n, buf, nil), nil
}

// Open decrypts a layer in place and returns its flag and body, which alias ct.
func (l *Layer) Open(ct []byte) (Flag, []byte, error) {
	if len(ct) < Overhead {
		return 0, nil, ErrAuth
	}
	n, err := l.next()
	if err != nil {
		return 0, nil, err
	}
	pt, err := l.aead.Open(ct[:0], n, ct, nil)
	if err != nil {
		return 0, nil, ErrAuth
	}
	return Flag(pt[0]), pt[1:], nil
}

// Counter returns how many seals or opens the layer has done.
func (l *Layer) Counter() uint64 { return l.ctr }

// Pair is the two layers of one hop, from one side's point of view.
type Pair struct {
	Forward  *Layer
	Backward *Layer
}

// NewPair makes the layers for k.
func NewPair(k *Keys) (Pair, error) {
	f, err := NewLayer(k.Forward)
	if err != nil {
		return Pair{}, err
	}
	b, err := NewLayer(k.Backward)
	if err != nil {
		return Pair{}, err
	}
	return Pair{Forward: f, Backward: b}, nil
}
