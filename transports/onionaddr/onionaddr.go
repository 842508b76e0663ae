// Package onionaddr parses and forms Tor v3 onion-service addresses
// (rend-spec-v3 §6, "Encoding onion addresses"): the host
// base32(PUBKEY | CHECKSUM | VERSION) + ".onion", where PUBKEY is the
// service's 32-byte Ed25519 identity key, VERSION is 0x03 and CHECKSUM is
// the first two bytes of SHA3-256(".onion checksum" | PUBKEY | VERSION).
//
// It is pure (no Tor, no network) so that the directory's parsers can check
// the addresses relays publish (spec/04-directory.md §2.2, RADDR) without
// importing the onion transport.
package onionaddr

import (
	"crypto/ed25519"
	"crypto/sha3"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// Suffix ends every onion host.
const Suffix = ".onion"

// HostLen is the length of a v3 onion host: 56 base32 characters and ".onion".
const HostLen = 56 + len(Suffix)

const version = 3

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrNotOnion is returned for a host that does not end in ".onion".
var ErrNotOnion = errors.New("onionaddr: not an onion host")

// IsOnion reports whether host ends in ".onion" (in any case), without
// checking it further.
func IsOnion(host string) bool {
	return len(host) >= len(Suffix) && strings.EqualFold(host[len(host)-len(Suffix):], Suffix)
}

// Parse checks a v3 onion host ("<56 lower-case base32>.onion") and returns
// its Ed25519 public key. Upper case, subdomains, v2 addresses, a wrong
// version byte or checksum are refused.
func Parse(host string) (ed25519.PublicKey, error) {
	if !IsOnion(host) {
		return nil, ErrNotOnion
	}
	if len(host) != HostLen {
		return nil, fmt.Errorf("onionaddr: %d bytes, a v3 onion host has %d (v2 and subdomains are refused)", len(host), HostLen)
	}
	label := host[:56]
	if label != strings.ToLower(label) || host[56:] != Suffix {
		return nil, errors.New("onionaddr: not in lower case")
	}
	raw, err := enc.DecodeString(strings.ToUpper(label))
	if err != nil || len(raw) != 35 {
		return nil, errors.New("onionaddr: not base32")
	}
	pub, sum, ver := raw[:32], raw[32:34], raw[34]
	if ver != version {
		return nil, fmt.Errorf("onionaddr: version %d, want 3", ver)
	}
	want := checksum(pub)
	if sum[0] != want[0] || sum[1] != want[1] {
		return nil, errors.New("onionaddr: bad checksum")
	}
	return ed25519.PublicKey(append([]byte(nil), pub...)), nil
}

// FromPublicKey returns the v3 onion host of an Ed25519 public key.
func FromPublicKey(pub ed25519.PublicKey) string {
	raw := make([]byte, 0, 35)
	raw = append(raw, pub...)
	sum := checksum(pub)
	raw = append(raw, sum[0], sum[1], version)
	return strings.ToLower(enc.EncodeToString(raw)) + Suffix
}

func checksum(pub []byte) [32]byte {
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(pub)
	h.Write([]byte{version})
	var out [32]byte
	h.Sum(out[:0])
	return out
}
