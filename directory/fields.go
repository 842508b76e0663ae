package directory

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/transports/onionaddr"
)

// Field encodings shared by every document (spec/04-directory.md §2.2).

// timeLayout is the one time format of every document, as Tor writes it:
// UTC, whole seconds, two arguments "YYYY-MM-DD HH:MM:SS" (spec README §2).
const timeLayout = "2006-01-02 15:04:05"

var b64 = base64.RawStdEncoding.Strict()

func fmtTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// timeArgs returns the two arguments of a time.
func timeArgs(t time.Time) []string {
	d, c, _ := strings.Cut(fmtTime(t), " ")
	return []string{d, c}
}

// parseTimeArgs parses a time from its two arguments.
func parseTimeArgs(a []string) (time.Time, error) {
	if len(a) < 2 {
		return time.Time{}, fmt.Errorf("want YYYY-MM-DD HH:MM:SS")
	}
	return parseTime(a[0] + " " + a[1])
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil || t.Format(timeLayout) != s {
		return time.Time{}, fmt.Errorf("bad time %q", clip(s))
	}
	return t, nil
}

func fmtB64(b []byte) string { return b64.EncodeToString(b) }

// parseB64 decodes unpadded base64 of exactly n bytes.
func parseB64(s string, n int) ([]byte, error) {
	if len(s) != b64.EncodedLen(n) {
		return nil, fmt.Errorf("want %d base64 bytes, got %d characters", n, len(s))
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("bad base64: %v", err)
	}
	return b, nil
}

func parseKey32(s string) ([32]byte, error) {
	var k [32]byte
	b, err := parseB64(s, 32)
	if err != nil {
		return k, err
	}
	copy(k[:], b)
	return k, nil
}

// parseUint parses a canonical decimal (no sign, no leading zeros) up to max.
func parseUint(s string, max uint64) (uint64, error) {
	if s == "" || len(s) > 1 && s[0] == '0' || s[0] == '+' {
		return 0, fmt.Errorf("bad number %q", clip(s))
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > max {
		return 0, fmt.Errorf("bad number %q (0..%d)", clip(s), max)
	}
	return v, nil
}

func fmtUint(v uint64) string { return strconv.FormatUint(v, 10) }

// parseKV splits "key=value"; the key must be a keyword-like name.
func parseKV(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || !validName(k) {
		return "", "", fmt.Errorf("bad key=value %q", clip(s))
	}
	return k, v, nil
}

func parseFP(s string) (keys.Fingerprint, error) {
	// Documents always write upper-case hex without '$'.
	if strings.ToUpper(s) != s || strings.HasPrefix(s, "$") {
		return keys.Fingerprint{}, fmt.Errorf("fingerprint %q is not 40 upper-case hex digits", clip(s))
	}
	fp, err := keys.ParseFingerprint(s)
	if err != nil {
		return fp, err
	}
	return fp, nil
}

// validName accepts model ids, nicknames, parameter names and transport
// names: 1..64 of [A-Za-z0-9._-], starting with an alphanumeric.
// ValidModelName reports whether s can be a catalog model name: a DNS label
// (1–63 letters, digits and '-', starting and ending with a letter or
// digit), so that "<name>.unfed" is a valid host name (spec §7.2). At most
// 63 characters, it can never be taken for a 64-hex model id.
func ValidModelName(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// validAddr accepts host:port with a numeric port; hosts are IP literals or
// DNS names. It is for authority addresses (dir-source); relay transports
// take checkRelayAddr.
func validAddr(s string) bool {
	if len(s) > 255 {
		return false
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return false
	}
	p, err := strconv.ParseUint(port, 10, 16)
	return err == nil && p != 0
}

// checkRelayAddr checks the address of a relay's transport (spec §2.2,
// RADDR): an IP literal and a port 1..65535, written canonically (IPv6 in
// brackets, IPv4 without, no zone, no leading zeros in the port). A DNS name
// is refused: clients keep the relays of a circuit in distinct /16 (IPv4) or
// /32 (IPv6) networks, which they cannot do for a name, and the name's owner
// could make it resolve anywhere. The one exception is the transport
// "onion", whose host is a v3 onion address and nothing else: it names a
// key, not a place, and only Tor resolves it.
func checkRelayAddr(transport, s string) error {
	limit := 64
	if transport == OnionTransport {
		limit = onionaddr.HostLen + len(":65535")
	}
	if len(s) > limit {
		return fmt.Errorf("address %q is longer than %d bytes", clip(s), limit)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("address %q is not HOST:PORT", clip(s))
	}
	if p, err := parseUint(port, 65535); err != nil || p == 0 {
		return fmt.Errorf("address %q: the port is not a number in 1..65535", clip(s))
	}
	if transport == OnionTransport {
		if _, err := onionaddr.Parse(host); err != nil {
			return fmt.Errorf("address %q: transport onion needs a v3 onion address: %v", clip(s), err)
		}
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return fmt.Errorf("address %q: the host is not an IP literal; relays publish IP addresses, not DNS names, "+
			"so that clients can keep a circuit's relays in distinct networks", clip(s))
	}
	if ip.IsUnspecified() || ip.IsMulticast() {
		return fmt.Errorf("address %q: the host is not a unicast address", clip(s))
	}
	if net.JoinHostPort(host, port) != s {
		return fmt.Errorf("address %q is not canonical: IPv6 goes in brackets, IPv4 does not", clip(s))
	}
	return nil
}

// OnionTransport is the transport whose address is a v3 onion address
// (spec §2.2, RADDR).
const OnionTransport = "onion"

func clip(s string) string {
	if len(s) > 48 {
		return s[:48] + "..."
	}
	return s
}

// lowMedian returns the low median of vs (dir-spec §3.8.1's rule for numeric
// values): the element at index (n-1)/2 of the sorted values. vs is sorted in
// place. It returns 0 for an empty slice.
func lowMedian(vs []uint64) uint64 {
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	return vs[(len(vs)-1)/2]
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
