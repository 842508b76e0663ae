package obfs4

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/transports/base"
)

// Bridge is a parsed bridge line (spec/01-link.md §2.6), Tor's format:
//
//	[Bridge] TRANSPORT ADDR FINGERPRINT [KEY=VALUE ...]
//
// e.g. "obfs4 192.0.2.1:443 0123…CDEF cert=… iat-mode=0".
type Bridge struct {
	// Transport is the transport name, e.g. "obfs4".
	Transport string
	// Addr is host:port (an IPv6 host in brackets).
	Addr string
	// Fingerprint is the relay identity the link must prove.
	Fingerprint keys.Fingerprint
	// Args are the transport's arguments.
	Args base.Args
}

// ErrBadBridgeLine is returned by ParseBridgeLine.
var ErrBadBridgeLine = errors.New("obfs4: bad bridge line")

// MaxBridgeLineLen bounds a bridge line.
const MaxBridgeLineLen = 4096

const certBase64Len = 70 // 52 bytes (node id, public key) in base64 without "=="

// BridgeLine formats a bridge line for an obfs4 listener at addr of the relay
// fp with the listener's published args (cert, iat-mode).
func BridgeLine(addr string, fp keys.Fingerprint, args base.Args) string {
	return Bridge{Transport: Name, Addr: addr, Fingerprint: fp, Args: args}.String()
}

// String formats b as a bridge line, without the "Bridge" keyword. Args are
// written sorted by key.
func (b Bridge) String() string {
	var sb strings.Builder
	sb.WriteString(b.Transport)
	sb.WriteByte(' ')
	sb.WriteString(b.Addr)
	sb.WriteByte(' ')
	sb.WriteString(b.Fingerprint.String())
	for _, k := range b.Args.Keys() {
		for _, v := range b.Args[k] {
			sb.WriteString(" " + k + "=" + v)
		}
	}
	return sb.String()
}

// ParseBridgeLine parses a bridge line. The fingerprint is required (UNFED
// links always check identity); for obfs4 the cert and iat-mode arguments are
// checked too.
func ParseBridgeLine(s string) (Bridge, error) {
	var b Bridge
	if len(s) > MaxBridgeLineLen {
		return b, fmt.Errorf("%w: %d bytes", ErrBadBridgeLine, len(s))
	}
	f := strings.Fields(s)
	if len(f) > 0 && strings.EqualFold(f[0], "Bridge") {
		f = f[1:]
	}
	if len(f) < 3 {
		return b, fmt.Errorf("%w: want TRANSPORT ADDR FINGERPRINT [ARGS]", ErrBadBridgeLine)
	}
	if !isIdent(f[0]) {
		return b, fmt.Errorf("%w: transport %q is not an identifier", ErrBadBridgeLine, f[0])
	}
	b.Transport = f[0]
	if err := checkAddr(f[1]); err != nil {
		return b, fmt.Errorf("%w: %v", ErrBadBridgeLine, err)
	}
	b.Addr = f[1]
	fp, err := keys.ParseFingerprint(f[2])
	if err != nil {
		return b, fmt.Errorf("%w: %v", ErrBadBridgeLine, err)
	}
	b.Fingerprint = fp
	b.Args = base.Args{}
	for _, kv := range f[3:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return b, fmt.Errorf("%w: argument %q is not KEY=VALUE", ErrBadBridgeLine, kv)
		}
		b.Args.Add(k, v)
	}
	if b.Transport == Name {
		if err := checkObfs4Args(b.Args); err != nil {
			return b, fmt.Errorf("%w: %v", ErrBadBridgeLine, err)
		}
	}
	return b, nil
}

func checkObfs4Args(a base.Args) error {
	cert, ok := a.Get(ArgCert)
	if !ok || len(a[ArgCert]) != 1 {
		return errors.New("obfs4 needs exactly one cert")
	}
	if len(cert) != certBase64Len {
		return fmt.Errorf("cert of %d characters, want %d", len(cert), certBase64Len)
	}
	if _, err := base64.StdEncoding.DecodeString(cert + "=="); err != nil {
		return fmt.Errorf("cert is not base64: %v", err)
	}
	iat, ok := a.Get(ArgIATMode)
	if !ok || len(a[ArgIATMode]) != 1 {
		return errors.New("obfs4 needs exactly one iat-mode")
	}
	if iat != "0" && iat != "1" && iat != "2" {
		return fmt.Errorf("iat-mode %q is not 0, 1 or 2", iat)
	}
	return nil
}

func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("address %q has no host", a)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

func isIdent(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}
