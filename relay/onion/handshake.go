// Package onion owns the per-hop cryptography of UNFED circuits
// (spec/02-circuit.md §3–§4): the one-way-authenticated ntor-style key
// agreement between a client and one hop (X25519, optionally hybrid with
// X-Wing), the key derivation to forward and backward AES-256-GCM keys, and
// the onion layers those keys seal and open with implicit counter nonces.
//
// CREATE handshake data (client → relay):
//
//	fingerprint  20 bytes  the relay the client means
//	B            32 bytes  the relay's X25519 onion key the client used
//	X            32 bytes  the client's ephemeral X25519 key
//	CT         1120 bytes  hybrid only: X-Wing ciphertext to the onion key's X-Wing half
//
// CREATED handshake data (relay → client):
//
//	Y            32 bytes  the relay's ephemeral X25519 key
//	AUTH         32 bytes  HMAC-SHA256 proving the relay knows b
//
// Nothing in this package touches the network.
package onion

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/kem/xwing"
	"golang.org/x/crypto/curve25519"

	"github.com/unfed/unfed/relay/keys"
)

// Type is a handshake type, carried in the htype field of CREATE and EXTEND.
type Type uint16

// Handshake types.
const (
	// Ntor is the classical handshake: X25519 only.
	Ntor Type = 1
	// NtorXWing is the hybrid handshake: X25519 plus an X-Wing encapsulation.
	NtorXWing Type = 2
)

// Protocol identifiers, mixed into every derivation (spec §3.2).
const (
	protoNtor      = "unfed-ntor-x25519-sha256-aes256gcm-1"
	protoNtorXWing = "unfed-ntor-xwing-sha256-aes256gcm-1"
)

// Wire sizes.
const (
	keyLen         = 32
	authLen        = 32
	createLen      = keys.FingerprintLen + 2*keyLen
	createLenXWing = createLen + xwing.CiphertextSize
	createdLen     = keyLen + authLen
)

// Errors callers may branch on.
var (
	// ErrHandshake is wrapped by every failed handshake: bad lengths, a key we
	// do not hold, a low-order point, a bad AUTH.
	ErrHandshake = errors.New("onion: handshake failed")
	// ErrUnknownType means the handshake type is not supported.
	ErrUnknownType = errors.New("onion: unknown handshake type")
)

func (t Type) proto() (string, int, error) {
	switch t {
	case Ntor:
		return protoNtor, createLen, nil
	case NtorXWing:
		return protoNtorXWing, createLenXWing, nil
	}
	return "", 0, fmt.Errorf("%w: %d", ErrUnknownType, uint16(t))
}

// Keys are the symmetric keys one hop shares with the client.
type Keys struct {
	Forward  [32]byte // client → hop layer key
	Backward [32]byte // hop → client layer key
}

// RelayInfo is what a client knows of a hop from the consensus.
type RelayInfo struct {
	Identity ed25519.PublicKey // Ed25519 identity key
	OnionKey [32]byte          // X25519 onion key
	XWingKey []byte            // packed X-Wing public key; needed for NtorXWing
}

// ClientHandshake is a handshake the client has started and not finished.
type ClientHandshake struct {
	typ    Type
	proto  string
	id     ed25519.PublicKey
	b      [32]byte
	x      [32]byte
	xPub   [32]byte
	ss, ct []byte
}

// NewClient starts a handshake with relay and returns it with the CREATE
// handshake data. rnd supplies the ephemeral key (32 bytes) and, for the
// hybrid type, the X-Wing encapsulation seed (64 bytes); nil means
// crypto/rand.
func NewClient(t Type, relay RelayInfo, rnd io.Reader) (*ClientHandshake, []byte, error) {
	proto, _, err := t.proto()
	if err != nil {
		return nil, nil, err
	}
	if len(relay.Identity) != ed25519.PublicKeySize {
		return nil, nil, fmt.Errorf("%w: identity key is %d bytes", ErrHandshake, len(relay.Identity))
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	h := &ClientHandshake{typ: t, proto: proto, id: relay.Identity, b: relay.OnionKey}
	if _, err := io.ReadFull(rnd, h.x[:]); err != nil {
		return nil, nil, fmt.Errorf("onion: reading randomness: %w", err)
	}
	pub, err := curve25519.X25519(h.x[:], curve25519.Basepoint)
	if err != nil {
		return nil, nil, fmt.Errorf("onion: ephemeral key: %w", err)
	}
	copy(h.xPub[:], pub)
	fp := keys.FingerprintOf(relay.Identity)
	out := make([]byte, 0, createLenXWing)
	out = append(out, fp[:]...)
	out = append(out, h.b[:]...)
	out = append(out, h.xPub[:]...)
	if t == NtorXWing {
		if len(relay.XWingKey) != xwing.PublicKeySize {
			return nil, nil, fmt.Errorf("%w: X-Wing key is %d bytes", ErrHandshake, len(relay.XWingKey))
		}
		seed := make([]byte, xwing.EncapsulationSeedSize)
		if _, err := io.ReadFull(rnd, seed); err != nil {
			return nil, nil, fmt.Errorf("onion: reading randomness: %w", err)
		}
		h.ss, h.ct, err = xwing.Encapsulate(relay.XWingKey, seed)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: X-Wing encapsulation: %v", ErrHandshake, err)
		}
		out = append(out, h.ct...)
	}
	return h, out, nil
}

// Type returns the handshake type.
func (h *ClientHandshake) Type() Type { return h.typ }

// Finish checks the relay's CREATED data and returns the hop keys.
func (h *ClientHandshake) Finish(created []byte) (*Keys, error) {
	if len(created) != createdLen {
		return nil, fmt.Errorf("%w: CREATED data is %d bytes", ErrHandshake, len(created))
	}
	y := created[:keyLen]
	xy, err := curve25519.X25519(h.x[:], y)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	xb, err := curve25519.X25519(h.x[:], h.b[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	k, auth, err := derive(h.proto, xy, xb, h.ss, h.id, h.b[:], h.xPub[:], y, h.ct)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(auth, created[keyLen:]) {
		return nil, fmt.Errorf("%w: bad AUTH", ErrHandshake)
	}
	return k, nil
}

// ServerKeys is what a relay answers handshakes with.
type ServerKeys struct {
	Identity ed25519.PublicKey
	// Onion holds the keys CREATE may name: the current onion key and, during
	// its grace period, the previous one. Nil entries are skipped.
	Onion []*keys.OnionKey
}

// Server answers the CREATE handshake data and returns the CREATED data and
// the hop keys. rnd supplies the relay's ephemeral key; nil means crypto/rand.
func Server(t Type, create []byte, sk ServerKeys, rnd io.Reader) ([]byte, *Keys, error) {
	proto, want, err := t.proto()
	if err != nil {
		return nil, nil, err
	}
	if len(create) != want {
		return nil, nil, fmt.Errorf("%w: CREATE data is %d bytes, want %d", ErrHandshake, len(create), want)
	}
	fp := keys.FingerprintOf(sk.Identity)
	if !bytes.Equal(create[:keys.FingerprintLen], fp[:]) {
		return nil, nil, fmt.Errorf("%w: CREATE names another relay", ErrHandshake)
	}
	bPub := create[keys.FingerprintLen : keys.FingerprintLen+keyLen]
	xPub := create[keys.FingerprintLen+keyLen : createLen]
	var ok *keys.OnionKey
	for _, k := range sk.Onion {
		if k != nil && bytes.Equal(k.Public[:], bPub) {
			ok = k
			break
		}
	}
	if ok == nil {
		return nil, nil, fmt.Errorf("%w: unknown onion key", ErrHandshake)
	}
	var ss, ct []byte
	if t == NtorXWing {
		ct = create[createLen:]
		if ss, err = ok.Decapsulate(ct); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrHandshake, err)
		}
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	var y [32]byte
	if _, err := io.ReadFull(rnd, y[:]); err != nil {
		return nil, nil, fmt.Errorf("onion: reading randomness: %w", err)
	}
	yPub, err := curve25519.X25519(y[:], curve25519.Basepoint)
	if err != nil {
		return nil, nil, fmt.Errorf("onion: ephemeral key: %w", err)
	}
	xy, err := curve25519.X25519(y[:], xPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	xb, err := ok.DH(xPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	k, auth, err := derive(proto, xy, xb, ss, sk.Identity, bPub, xPub, yPub, ct)
	if err != nil {
		return nil, nil, err
	}
	return append(yPub, auth...), k, nil
}

// derive is the key schedule of spec §3.2:
//
//	secret_input = EXP(X,y) | EXP(X,b) | [SS] | ID | B | X | Y | [CT] | PROTOID
//	PRK  = HKDF-Extract(SHA-256, salt = PROTOID, secret_input)
//	Kf | Kb | Kauth = HKDF-Expand(PRK, PROTOID | ":key_expand", 96)
//	AUTH = HMAC-SHA256(Kauth, ID | B | Y | X | PROTOID | ":server")
func derive(proto string, xy, xb, ss []byte, id ed25519.PublicKey, b, x, y, ct []byte) (*Keys, []byte, error) {
	in := make([]byte, 0, 4*32+len(ss)+len(id)+len(ct)+len(proto))
	for _, p := range [][]byte{xy, xb, ss, id, b, x, y, ct, []byte(proto)} {
		in = append(in, p...)
	}
	prk, err := hkdf.Extract(sha256.New, in, []byte(proto))
	if err != nil {
		return nil, nil, fmt.Errorf("onion: kdf: %w", err)
	}
	okm, err := hkdf.Expand(sha256.New, prk, proto+":key_expand", 96)
	if err != nil {
		return nil, nil, fmt.Errorf("onion: kdf: %w", err)
	}
	k := &Keys{}
	copy(k.Forward[:], okm[0:32])
	copy(k.Backward[:], okm[32:64])
	m := hmac.New(sha256.New, okm[64:96])
	for _, p := range [][]byte{id, b, y, x, []byte(proto), []byte(":server")} {
		m.Write(p)
	}
	return k, m.Sum(nil), nil
}
