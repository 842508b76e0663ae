package hop

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/unfed/unfed/relay/cell"
)

// Edge envelope (spec §5): how an edge message crosses hops it is not meant
// for. Every edge carries one envelope stream per sender direction:
//
//	channel     u8   which sender direction, below
//	ciphertext  AES-256-GCM(key(secret, channel), nonce, message), with the tag
//
// key = HKDF-SHA256(ikm = edge secret, salt = "unfed-edge-v1",
// info = "unfed-edge-v1 key" || channel), 32 bytes. The nonce is implicit:
// four zero bytes and a big-endian 64-bit counter of the envelopes sealed in
// that direction, from 0. No additional data. A replayed, dropped, reordered or
// forged envelope fails to open; an opener that failed once refuses every later
// envelope, because its stream is broken.

// Channel names the sender direction of an edge envelope.
type Channel uint8

// Channels.
const (
	// ChanData: the previous compute hop to this hop, or a party to the
	// same side of the next stage, under SlotIn (receiver) / SlotOut (sender).
	ChanData Channel = 0
	// ChanDataB: a party to the other side of the next stage, under SlotInB
	// (receiver) / SlotOutB (sender).
	ChanDataB Channel = 1
	// ChanPairAB: party A to party B of a stage, under SlotPair.
	ChanPairAB Channel = 2
	// ChanPairBA: party B to party A of a stage, under SlotPair.
	ChanPairBA Channel = 3
	// ChannelDeal: a dealer to a party of its stage, under SlotDeal (A) or
	// SlotDealB (B).
	ChannelDeal Channel = 4
)

const maxChannel = ChannelDeal

// EnvelopeOverhead is what an envelope adds to an edge message.
const EnvelopeOverhead = 1 + 16

// maxEnvelope is the largest envelope: one relay (edge) message.
const maxEnvelope = cell.MaxMessage

// ErrEdgeAuth is returned when an envelope does not open. The receiving hop
// answers CodeEdgeAuth and closes its session.
var ErrEdgeAuth = errors.New("hop: edge envelope authentication failed")

const edgeLabel = "unfed-edge-v1"

// edgeKey derives the AES-256 key of channel ch of the edge with secret s.
func edgeKey(s *EdgeSecret, ch Channel) ([]byte, error) {
	if ch > maxChannel {
		return nil, fmt.Errorf("hop: edge channel %d", ch)
	}
	key, err := hkdf.Key(sha256.New, s[:], []byte(edgeLabel), edgeLabel+" key"+string([]byte{byte(ch)}), 32)
	if err != nil {
		return nil, fmt.Errorf("hop: edge key: %w", err)
	}
	return key, nil
}

func edgeAEAD(s *EdgeSecret, ch Channel) (cipher.AEAD, error) {
	key, err := edgeKey(s, ch)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("hop: edge key: %w", err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("hop: edge key: %w", err)
	}
	return g, nil
}

type edgeStream struct {
	ch    Channel
	aead  cipher.AEAD
	ctr   uint64
	nonce [12]byte
}

func (s *edgeStream) next() ([]byte, error) {
	if s.ctr == ^uint64(0) {
		return nil, errors.New("hop: edge counter exhausted")
	}
	binary.BigEndian.PutUint64(s.nonce[4:], s.ctr)
	s.ctr++
	return s.nonce[:], nil
}

// Sealer seals one sender direction's envelopes. It is not safe for
// concurrent use; seal in the order the envelopes are sent.
type Sealer struct{ s edgeStream }

// NewSealer returns the sealer for channel ch of the edge with secret s.
func NewSealer(s *EdgeSecret, ch Channel) (*Sealer, error) {
	g, err := edgeAEAD(s, ch)
	if err != nil {
		return nil, err
	}
	return &Sealer{edgeStream{ch: ch, aead: g}}, nil
}

// Seal appends the envelope of msg to dst.
func (e *Sealer) Seal(dst, msg []byte) ([]byte, error) {
	if len(msg) > MaxEdgePlain {
		return nil, fmt.Errorf("hop: edge message of %d bytes over %d", len(msg), MaxEdgePlain)
	}
	n, err := e.s.next()
	if err != nil {
		return nil, err
	}
	dst = append(dst, byte(e.s.ch))
	return e.s.aead.Seal(dst, n, msg, nil), nil
}

// Opener opens one sender direction's envelopes, in order. It is not safe for
// concurrent use.
type Opener struct {
	s      edgeStream
	broken bool
}

// NewOpener returns the opener for channel ch of the edge with secret s.
func NewOpener(s *EdgeSecret, ch Channel) (*Opener, error) {
	g, err := edgeAEAD(s, ch)
	if err != nil {
		return nil, err
	}
	return &Opener{s: edgeStream{ch: ch, aead: g}}, nil
}

// Open returns the message inside env. It decrypts in place: the result
// aliases env. Any failure is ErrEdgeAuth, and every later call fails too.
func (o *Opener) Open(env []byte) ([]byte, error) {
	if o.broken || len(env) < EnvelopeOverhead || len(env) > maxEnvelope || Channel(env[0]) != o.s.ch {
		o.broken = true
		return nil, ErrEdgeAuth
	}
	n, err := o.s.next()
	if err != nil {
		o.broken = true
		return nil, ErrEdgeAuth
	}
	pt, err := o.s.aead.Open(env[1:1], n, env[1:], nil)
	if err != nil {
		o.broken = true
		return nil, ErrEdgeAuth
	}
	return pt, nil
}

// EnvelopeChannel returns the channel an envelope claims; the claim is
// authenticated only by Open.
func EnvelopeChannel(env []byte) (Channel, error) {
	if len(env) < EnvelopeOverhead || Channel(env[0]) > maxChannel {
		return 0, ErrEdgeAuth
	}
	return Channel(env[0]), nil
}
