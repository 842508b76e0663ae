package keys

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"time"
)

// A link certificate binds a Noise static link key to an identity key until an
// expiry time (spec/README.md §5.4). Layout, all integers big-endian:
//
//	version   1 byte   = 1
//	identity  32 bytes   Ed25519 identity public key
//	link key  32 bytes   X25519 Noise static public key
//	expires   8 bytes    Unix seconds
//	signature 64 bytes   Ed25519 over certContext || the 73 bytes above
const (
	certVersion = 1
	certBodyLen = 1 + 32 + 32 + 8
	// LinkCertLen is the encoded length of a link certificate.
	LinkCertLen = certBodyLen + ed25519.SignatureSize
)

const certContext = "unfed-link-cert-v1"

// LinkCert is a decoded link certificate.
type LinkCert struct {
	Identity ed25519.PublicKey
	LinkKey  [32]byte
	Expires  time.Time
	raw      []byte
}

// CertifyLink signs a certificate for link under id, valid until expires.
func CertifyLink(id *Identity, link [32]byte, expires time.Time) []byte {
	body := make([]byte, certBodyLen, LinkCertLen)
	body[0] = certVersion
	copy(body[1:33], id.Public)
	copy(body[33:65], link[:])
	binary.BigEndian.PutUint64(body[65:73], uint64(expires.Unix()))
	sig := id.Sign(append([]byte(certContext), body...))
	return append(body, sig...)
}

// ParseLinkCert decodes and verifies a link certificate: signature by the
// embedded identity, and expiry against now. The caller still has to check
// that the identity is the one it expected (see LinkCert.Fingerprint).
func ParseLinkCert(b []byte, now time.Time) (*LinkCert, error) {
	if len(b) != LinkCertLen {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadCert, len(b), LinkCertLen)
	}
	if b[0] != certVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadCert, b[0])
	}
	c := &LinkCert{Identity: ed25519.PublicKey(append([]byte(nil), b[1:33]...))}
	copy(c.LinkKey[:], b[33:65])
	secs := binary.BigEndian.Uint64(b[65:73])
	if secs > 1<<40 {
		return nil, fmt.Errorf("%w: expiry out of range", ErrBadCert)
	}
	c.Expires = time.Unix(int64(secs), 0).UTC()
	msg := append([]byte(certContext), b[:certBodyLen]...)
	if !Verify(c.Identity, msg, b[certBodyLen:]) {
		return nil, fmt.Errorf("%w: signature does not verify", ErrBadCert)
	}
	if !now.Before(c.Expires) {
		return nil, fmt.Errorf("%w: expired at %s", ErrBadCert, c.Expires.Format(time.RFC3339))
	}
	c.raw = append([]byte(nil), b...)
	return c, nil
}

// Fingerprint returns the fingerprint of the certifying identity.
func (c *LinkCert) Fingerprint() Fingerprint { return FingerprintOf(c.Identity) }

// Bytes returns the encoded certificate.
func (c *LinkCert) Bytes() []byte { return append([]byte(nil), c.raw...) }
