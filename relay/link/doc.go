// Package link owns UNFED's link layer (spec/01-link.md §3–§6): a Noise
// session over any transport's net.Conn, carrying length-prefixed encrypted
// frames between a client and its guard or between two relays.
//
// Wire format, all integers big-endian:
//
//	selector   1 byte    handshake pattern (§3.1): 1 IK, 2 XX (relay↔relay),
//	                     3 NK, 4 NX (client→guard)
//	handshake  n × (2-byte length || Noise message), n = 2 or 3 (§3.2)
//	frames     (2-byte length || AES-256-GCM ciphertext of type || body)*
//
// Handshake payloads are type-length-value items (§4) carrying the link
// protocol versions and the link certificates of relay/keys, so a relay's
// Noise static key is bound to its Ed25519 identity. A dialer that expected a
// fingerprint and met another gets ErrWrongIdentity.
//
// Files: frame.go (frame codec and the Conn data path), payload.go (handshake
// payload codec), handshake.go (Dial, Accept), listener.go (rate and
// concurrency limits per source address), metrics.go (Prometheus counters).
//
// Only relay and client code that sets up links imports this package; it knows
// nothing of circuits.
package link
