// Package keys owns the long-term and medium-term keys of an UNFED node and
// their encodings (spec/README.md §5):
//
//   - the Ed25519 identity key, whose fingerprint names a relay or authority;
//   - the X25519 onion key (with an X-Wing seed for the hybrid handshake),
//     rotated on a schedule, the previous key kept for a grace period;
//   - the Noise static link key, certified by the identity key.
//
// Keys are created on first use and written atomically, mode 0600, into the
// node's data directory. A key file with a wrong mode or unparsable contents is
// an error; it is never silently replaced.
package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cloudflare/circl/kem/xwing"
	"golang.org/x/crypto/curve25519"
)

// FingerprintLen is the length in bytes of a Fingerprint.
const FingerprintLen = 20

// fingerprintPrefix domain-separates fingerprints from every other hash of an
// identity key (spec §5.2).
const fingerprintPrefix = "unfed-fingerprint-v1"

// Fingerprint names a node: the first 20 bytes of
// SHA-256("unfed-fingerprint-v1" || ed25519-identity-public-key).
// Its text form is 40 upper-case hex digits, as Tor writes relay fingerprints,
// so it fits unchanged in Tor-format bridge lines.
type Fingerprint [FingerprintLen]byte

// FingerprintOf returns the fingerprint of an Ed25519 identity public key.
func FingerprintOf(pub ed25519.PublicKey) Fingerprint {
	h := sha256.New()
	h.Write([]byte(fingerprintPrefix))
	h.Write(pub)
	var fp Fingerprint
	copy(fp[:], h.Sum(nil))
	return fp
}

// String returns the 40-hex-digit upper-case form.
func (f Fingerprint) String() string { return strings.ToUpper(hex.EncodeToString(f[:])) }

// IsZero reports whether f is the zero fingerprint.
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// ParseFingerprint parses 40 hex digits (either case). A leading '$', as in
// Tor's notation, is accepted.
func ParseFingerprint(s string) (Fingerprint, error) {
	var fp Fingerprint
	s = strings.TrimPrefix(s, "$")
	if len(s) != 2*FingerprintLen {
		return fp, fmt.Errorf("keys: fingerprint %q: want %d hex digits, got %d", truncate(s), 2*FingerprintLen, len(s))
	}
	if _, err := hex.Decode(fp[:], []byte(s)); err != nil {
		return fp, fmt.Errorf("keys: fingerprint %q: %w", truncate(s), err)
	}
	return fp, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Identity is a node's Ed25519 identity key pair.
type Identity struct {
	Public  ed25519.PublicKey
	private ed25519.PrivateKey
}

// NewIdentity creates an identity key from 32 bytes of randomness read from r
// (crypto/rand when r is nil).
func NewIdentity(r io.Reader) (*Identity, error) {
	if r == nil {
		r = rand.Reader
	}
	var seed [ed25519.SeedSize]byte
	if _, err := io.ReadFull(r, seed[:]); err != nil {
		return nil, fmt.Errorf("keys: reading randomness: %w", err)
	}
	return IdentityFromSeed(seed[:])
}

// IdentityFromSeed derives an identity key from its 32-byte seed.
func IdentityFromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("keys: identity seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return &Identity{Public: priv.Public().(ed25519.PublicKey), private: priv}, nil
}

// Fingerprint returns the identity's fingerprint.
func (id *Identity) Fingerprint() Fingerprint { return FingerprintOf(id.Public) }

// Sign signs msg with the identity key.
func (id *Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.private, msg) }

// Seed returns the private seed. Only the key store and tests call it.
func (id *Identity) Seed() []byte { return id.private.Seed() }

// Verify reports whether sig is a valid Ed25519 signature of msg by pub.
// A public key of the wrong length is never valid.
func Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, msg, sig)
}

// OnionKey is a relay's medium-term circuit-handshake key: an X25519 key pair
// and an X-Wing (ML-KEM-768 + X25519) key pair for the hybrid handshake,
// both derived from one 64-byte secret.
type OnionKey struct {
	Public      [32]byte // X25519 public key
	XWingPublic []byte   // packed X-Wing public key (xwing.PublicKeySize bytes)
	Created     time.Time

	private   [32]byte
	xwingSeed [xwing.SeedSize]byte
	xwingPriv []byte
}

// OnionSecretLen is the length of an onion key's stored secret.
const OnionSecretLen = 32 + xwing.SeedSize

// NewOnionKey creates an onion key from randomness read from r (crypto/rand
// when nil).
func NewOnionKey(r io.Reader, created time.Time) (*OnionKey, error) {
	if r == nil {
		r = rand.Reader
	}
	var secret [OnionSecretLen]byte
	if _, err := io.ReadFull(r, secret[:]); err != nil {
		return nil, fmt.Errorf("keys: reading randomness: %w", err)
	}
	return OnionKeyFromSecret(secret[:], created)
}

// OnionKeyFromSecret rebuilds an onion key from its stored secret.
func OnionKeyFromSecret(secret []byte, created time.Time) (*OnionKey, error) {
	if len(secret) != OnionSecretLen {
		return nil, fmt.Errorf("keys: onion secret is %d bytes, want %d", len(secret), OnionSecretLen)
	}
	k := &OnionKey{Created: created.UTC().Truncate(time.Second)}
	copy(k.private[:], secret[:32])
	copy(k.xwingSeed[:], secret[32:])
	pub, err := curve25519.X25519(k.private[:], curve25519.Basepoint)
	if err != nil {
		return nil, fmt.Errorf("keys: onion key: %w", err)
	}
	copy(k.Public[:], pub)
	k.xwingPriv, k.XWingPublic = xwing.DeriveKeyPairPacked(k.xwingSeed[:])
	return k, nil
}

// Secret returns the 64-byte stored form of the key.
func (k *OnionKey) Secret() []byte {
	out := make([]byte, 0, OnionSecretLen)
	out = append(out, k.private[:]...)
	return append(out, k.xwingSeed[:]...)
}

// DH computes X25519(onion private key, peer). It fails on a low-order peer
// point (all-zero output).
func (k *OnionKey) DH(peer []byte) ([]byte, error) {
	out, err := curve25519.X25519(k.private[:], peer)
	if err != nil {
		return nil, fmt.Errorf("keys: onion DH: %w", err)
	}
	return out, nil
}

// Decapsulate opens an X-Wing ciphertext sent to this onion key.
func (k *OnionKey) Decapsulate(ct []byte) ([]byte, error) {
	if len(ct) != xwing.CiphertextSize {
		return nil, fmt.Errorf("keys: X-Wing ciphertext is %d bytes, want %d", len(ct), xwing.CiphertextSize)
	}
	return xwing.Decapsulate(ct, k.xwingPriv), nil
}

// LinkKey is a node's Noise static key (X25519).
type LinkKey struct {
	Public  [32]byte
	Private [32]byte
}

// NewLinkKey creates a link key from randomness read from r (crypto/rand when
// nil).
func NewLinkKey(r io.Reader) (*LinkKey, error) {
	if r == nil {
		r = rand.Reader
	}
	var priv [32]byte
	if _, err := io.ReadFull(r, priv[:]); err != nil {
		return nil, fmt.Errorf("keys: reading randomness: %w", err)
	}
	return LinkKeyFromPrivate(priv[:])
}

// LinkKeyFromPrivate rebuilds a link key from its private half.
func LinkKeyFromPrivate(priv []byte) (*LinkKey, error) {
	if len(priv) != 32 {
		return nil, fmt.Errorf("keys: link private key is %d bytes, want 32", len(priv))
	}
	k := &LinkKey{}
	copy(k.Private[:], priv)
	pub, err := curve25519.X25519(k.Private[:], curve25519.Basepoint)
	if err != nil {
		return nil, fmt.Errorf("keys: link key: %w", err)
	}
	copy(k.Public[:], pub)
	return k, nil
}

// ErrBadCert is returned when a link certificate does not verify.
var ErrBadCert = errors.New("keys: bad link certificate")
