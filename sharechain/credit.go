// Package sharechain owns UNFED's economy (spec/12-economy.md): credits
// (RFC 9474 blind RSA tokens issued by the authorities' mints), the spent
// set, share blocks signed by relays, fork choice, PPLNS payouts and
// slashing, all stored in one SQLite schema.
//
// Layers, as in the rest of the tree: credit.go and block.go are pure codecs;
// mint.go, wallet.go and spent.go hold keys and state; chain.go is the fork
// choice engine; pplns.go the pure payout function; cli.go the `unfed`
// commands. Nothing outside the economy should import the store directly.
package sharechain

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/cloudflare/circl/blindsign/blindrsa"
)

// Credit layout constants (spec 12 §2.2).
const (
	CreditVersion = 1
	KeyIDLen      = 8
	PrefixLen     = 32
	NonceLen      = 32
	// MinModulusBytes and MaxModulusBytes bound a mint key (2048..4096 bits).
	MinModulusBytes = 256
	MaxModulusBytes = 512
	// MaxCreditLen bounds an encoded credit.
	MaxCreditLen = 1 + KeyIDLen + PrefixLen + NonceLen + 2 + MaxModulusBytes
)

// Variant is the RFC 9474 variant every mint key uses.
const Variant = blindrsa.SHA384PSSRandomized

const (
	creditDomain   = "unfed-credit-v1"
	creditIDDomain = "unfed-credit-id-v1"
	keyIDDomain    = "unfed-mint-key-v1"
)

// KeyID names a mint key: it binds the key's epoch and denomination.
type KeyID [KeyIDLen]byte

// CreditID is what the spent set stores (spec 12 §3.1).
type CreditID [32]byte

// MintPublicKey is one mint key as published in the consensus: it signs
// credits of one denomination during one epoch (spec 12 §2.1).
type MintPublicKey struct {
	Epoch uint64
	Denom uint64
	Key   *rsa.PublicKey
}

// ID returns H("unfed-mint-key-v1" || u64 epoch || u64 denom || PKIX DER)[:8].
func (k MintPublicKey) ID() KeyID {
	der, _ := x509.MarshalPKIXPublicKey(k.Key)
	h := sha256.New()
	h.Write([]byte(keyIDDomain))
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.Epoch)
	binary.BigEndian.PutUint64(b[8:], k.Denom)
	h.Write(b[:])
	h.Write(der)
	var id KeyID
	copy(id[:], h.Sum(nil))
	return id
}

// checkMintKey enforces the key limits of spec 12 §2.1.
func checkMintKey(k *rsa.PublicKey) error {
	if k == nil || k.N == nil {
		return errors.New("sharechain: no mint key")
	}
	n := (k.N.BitLen() + 7) / 8
	if n < MinModulusBytes || n > MaxModulusBytes {
		return fmt.Errorf("sharechain: mint key of %d bytes, want %d..%d", n, MinModulusBytes, MaxModulusBytes)
	}
	if k.E != 65537 {
		return fmt.Errorf("sharechain: mint key exponent %d, want 65537", k.E)
	}
	return nil
}

// Credit is a finalized, unblinded token (spec 12 §2.2).
type Credit struct {
	KeyID     KeyID
	Prefix    [PrefixLen]byte
	Nonce     [NonceLen]byte
	Signature []byte
}

// creditMessage is the message the mint blindly signs, without the RFC 9474
// prefix: "unfed-credit-v1" || key id || nonce.
func creditMessage(id KeyID, nonce *[NonceLen]byte) []byte {
	m := make([]byte, 0, len(creditDomain)+KeyIDLen+NonceLen)
	m = append(m, creditDomain...)
	m = append(m, id[:]...)
	return append(m, nonce[:]...)
}

// prepared returns prefix || message, the input to RSA-PSS verification.
func (c *Credit) prepared() []byte {
	return append(append([]byte{}, c.Prefix[:]...), creditMessage(c.KeyID, &c.Nonce)...)
}

// ID returns H("unfed-credit-id-v1" || key id || nonce). The prefix and the
// signature are not part of it, so neither can be varied to spend twice.
func (c *Credit) ID() CreditID {
	h := sha256.New()
	h.Write([]byte(creditIDDomain))
	h.Write(c.KeyID[:])
	h.Write(c.Nonce[:])
	var id CreditID
	copy(id[:], h.Sum(nil))
	return id
}

// Marshal encodes the credit.
func (c *Credit) Marshal() []byte {
	b := make([]byte, 0, 1+KeyIDLen+PrefixLen+NonceLen+2+len(c.Signature))
	b = append(b, CreditVersion)
	b = append(b, c.KeyID[:]...)
	b = append(b, c.Prefix[:]...)
	b = append(b, c.Nonce[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Signature)))
	return append(b, c.Signature...)
}

// ParseCredit decodes a credit; it checks the layout only (Verify checks the
// signature).
func ParseCredit(b []byte) (*Credit, error) {
	const head = 1 + KeyIDLen + PrefixLen + NonceLen + 2
	if len(b) < head {
		return nil, fmt.Errorf("sharechain: credit of %d bytes is too short", len(b))
	}
	if b[0] != CreditVersion {
		return nil, fmt.Errorf("sharechain: credit version %d", b[0])
	}
	c := &Credit{}
	p := 1
	p += copy(c.KeyID[:], b[p:])
	p += copy(c.Prefix[:], b[p:])
	p += copy(c.Nonce[:], b[p:])
	n := int(binary.BigEndian.Uint16(b[p:]))
	p += 2
	if n < MinModulusBytes || n > MaxModulusBytes {
		return nil, fmt.Errorf("sharechain: credit signature of %d bytes", n)
	}
	if len(b)-p != n {
		return nil, fmt.Errorf("sharechain: credit signature length %d, %d bytes follow", n, len(b)-p)
	}
	c.Signature = append([]byte(nil), b[p:]...)
	return c, nil
}

// Verify checks the credit's signature under k, whose ID must be the
// credit's key id.
func (c *Credit) Verify(k MintPublicKey) error {
	if k.ID() != c.KeyID {
		return errors.New("sharechain: credit key id does not match the key")
	}
	return c.verifySig(k, nil)
}

// pssOptions are RFC 9474's RSABSSA-SHA384-PSS-Randomized parameters: a
// 48-byte salt (MGF1 with SHA-384, the message hash).
var pssOptions = &rsa.PSSOptions{SaltLength: sha512.Size384, Hash: crypto.SHA384}

// verifySig checks the credit's signature under k, known to be the key its
// key id names (a KeySet's keys are indexed by their ID), with pk, k
// prepared for verification, if there is one (rsapss.go). RFC 9474
// verification is RSASSA-PSS verification of prefix || message with the
// variant's parameters (§4.5 there); crypto/rsa's does that in about two
// thirds of the time of circl's math/big exponentiation, and a prepared
// key in about two thirds of crypto/rsa's.
func (c *Credit) verifySig(k MintPublicKey, pk *pssKey) error {
	if err := checkMintKey(k.Key); err != nil {
		return err
	}
	if len(c.Signature) != (k.Key.N.BitLen()+7)/8 {
		return errors.New("sharechain: credit signature length does not match the key")
	}
	if new(big.Int).SetBytes(c.Signature).Cmp(k.Key.N) >= 0 {
		return errors.New("sharechain: credit signature out of range")
	}
	h := sha512.Sum384(c.prepared())
	if pk != nil {
		return pk.verify(h[:], c.Signature)
	}
	if err := rsa.VerifyPSS(k.Key, crypto.SHA384, h[:], c.Signature, pssOptions); err != nil {
		return fmt.Errorf("sharechain: bad credit signature: %w", err)
	}
	return nil
}

// KeySet is the set of mint keys a verifier accepts, indexed by key id.
// The zero value is empty and ready to use.
type KeySet struct {
	mu   sync.RWMutex // a relay adds the keys of each new consensus while it verifies credits
	keys map[KeyID]MintPublicKey
	pss  map[KeyID]*pssKey // the keys prepared for verification
}

// Add adds a key after checking its limits.
func (s *KeySet) Add(k MintPublicKey) error {
	if err := checkMintKey(k.Key); err != nil {
		return err
	}
	if k.Denom == 0 {
		return errors.New("sharechain: mint key of denomination 0")
	}
	pk, err := newPSSKey(k.Key)
	if err != nil {
		return err
	}
	id := k.ID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = make(map[KeyID]MintPublicKey)
		s.pss = make(map[KeyID]*pssKey)
	}
	s.keys[id] = k
	s.pss[id] = pk
	return nil
}

// Lookup returns the key with id.
func (s *KeySet) Lookup(id KeyID) (MintPublicKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[id]
	return k, ok
}

// Keys returns every key, in no particular order.
func (s *KeySet) Keys() []MintPublicKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]MintPublicKey, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, k)
	}
	return out
}

// Valid reports whether a credit of key epoch e may be redeemed at epoch
// now: during its own epoch and the next one (spec 12 §3.2).
func Valid(e, now uint64) bool { return now == e || now == e+1 }

// CheckCredit parses nothing: it looks up c's key, checks the epoch window at
// epoch now and the signature, and returns the key.
func (s *KeySet) CheckCredit(c *Credit, now uint64) (MintPublicKey, error) {
	s.mu.RLock()
	k, ok := s.keys[c.KeyID]
	pk := s.pss[c.KeyID]
	s.mu.RUnlock()
	if !ok {
		return MintPublicKey{}, fmt.Errorf("sharechain: unknown mint key %x", c.KeyID)
	}
	if !Valid(k.Epoch, now) {
		return MintPublicKey{}, fmt.Errorf("sharechain: credit of epoch %d has expired (epoch %d)", k.Epoch, now)
	}
	if err := c.verifySig(k, pk); err != nil { // k is the key c.KeyID names
		return MintPublicKey{}, err
	}
	return k, nil
}
