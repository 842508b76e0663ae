package socks

// Server side of the SOCKS5 handshake (RFC 1928) with username/password
// authentication (RFC 1929), spec/08-client-api.md §7. Every length is a
// single byte on the wire, so nothing here allocates more than 255 bytes
// per field; the caller bounds the time.
//
//	greeting   VER(1)=5 NMETHODS(1) METHODS(NMETHODS)
//	selection  VER(1)=5 METHOD(1)                     0x00 none, 0x02 user/pass, 0xFF no acceptable
//	auth       VER(1)=1 ULEN(1) UNAME(ULEN) PLEN(1) PASSWD(PLEN)
//	auth reply VER(1)=1 STATUS(1)=0
//	request    VER(1)=5 CMD(1) RSV(1) ATYP(1) DST.ADDR(var) DST.PORT(2)
//	reply      VER(1)=5 REP(1) RSV(1)=0 ATYP(1)=1 BND.ADDR(4)=0 BND.PORT(2)=0

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// SOCKS5 constants.
const (
	version5        = 0x05
	authVersion     = 0x01
	methodNone      = 0x00
	methodUserPass  = 0x02
	methodNoAccept  = 0xFF
	cmdConnect      = 0x01
	atypIPv4        = 0x01
	atypDomain      = 0x03
	atypIPv6        = 0x04
	overlaySuffix   = ".unfed"
	overlayHTTPPort = 80
)

// Reply codes (RFC 1928 §6).
const (
	ReplySucceeded           = 0x00
	ReplyGeneralFailure      = 0x01
	ReplyNotAllowed          = 0x02
	ReplyCommandNotSupported = 0x07
	ReplyAddressNotSupported = 0x08
)

// RefusedError reports a request the server answered with a failure reply.
type RefusedError struct {
	Code   byte // the reply code sent
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("socks: request refused (reply 0x%02x): %s", e.Code, e.Reason)
}

// Auth is what the caller authenticated with. Credentials are never
// checked; they only select the circuit isolation key.
type Auth struct {
	UserPass bool // method 0x02 was used
	Username string
	Password string
}

// isolation encodes the credentials for openai.WithIsolationSource, with
// lengths so that no two different pairs encode alike.
func (a Auth) isolation() string {
	if !a.UserPass {
		return "none"
	}
	return fmt.Sprintf("userpass:%d:%s:%d:%s", len(a.Username), a.Username, len(a.Password), a.Password)
}

// Target is an accepted CONNECT destination.
type Target struct {
	Host  string // lower case, ends in ".unfed", no trailing dot
	Model string // Host without the ".unfed" suffix
}

var errVersion = errors.New("socks: not a SOCKS5 client")

// serverHandshake runs the server side of the handshake on rw, up to and
// including the reply to the request. It reads exactly the handshake bytes,
// so the stream continues with the tunnelled data. Failure replies are sent
// before the error is returned; the caller then closes the connection.
func serverHandshake(rw io.ReadWriter) (Target, Auth, error) {
	var auth Auth
	var hdr [2]byte
	if _, err := io.ReadFull(rw, hdr[:]); err != nil {
		return Target{}, auth, fmt.Errorf("socks: read greeting: %w", err)
	}
	if hdr[0] != version5 {
		return Target{}, auth, errVersion
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(rw, methods); err != nil {
		return Target{}, auth, fmt.Errorf("socks: read methods: %w", err)
	}
	method := byte(methodNoAccept)
	for _, m := range methods {
		if m == methodUserPass {
			method = methodUserPass // preferred: the credentials isolate circuits
			break
		}
		if m == methodNone {
			method = methodNone
		}
	}
	if _, err := rw.Write([]byte{version5, method}); err != nil {
		return Target{}, auth, fmt.Errorf("socks: write method: %w", err)
	}
	if method == methodNoAccept {
		return Target{}, auth, errors.New("socks: no acceptable authentication method")
	}
	if method == methodUserPass {
		var err error
		if auth, err = readUserPass(rw); err != nil {
			return Target{}, auth, err
		}
		if _, err := rw.Write([]byte{authVersion, 0x00}); err != nil {
			return Target{}, auth, fmt.Errorf("socks: write auth reply: %w", err)
		}
	}
	target, err := readRequest(rw)
	code := byte(ReplySucceeded)
	var refused *RefusedError
	if errors.As(err, &refused) {
		code = refused.Code
	} else if err != nil {
		return Target{}, auth, err
	}
	if _, werr := rw.Write([]byte{version5, code, 0x00, atypIPv4, 0, 0, 0, 0, 0, 0}); werr != nil && err == nil {
		err = fmt.Errorf("socks: write reply: %w", werr)
	}
	return target, auth, err
}

func readUserPass(r io.Reader) (Auth, error) {
	var ver [1]byte
	if _, err := io.ReadFull(r, ver[:]); err != nil {
		return Auth{}, fmt.Errorf("socks: read auth: %w", err)
	}
	if ver[0] != authVersion {
		return Auth{}, fmt.Errorf("socks: auth version %d", ver[0])
	}
	user, err := readShortString(r)
	if err != nil {
		return Auth{}, fmt.Errorf("socks: read username: %w", err)
	}
	pass, err := readShortString(r)
	if err != nil {
		return Auth{}, fmt.Errorf("socks: read password: %w", err)
	}
	return Auth{UserPass: true, Username: user, Password: pass}, nil
}

// readShortString reads a one-byte length and that many bytes.
func readShortString(r io.Reader) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", err
	}
	b := make([]byte, n[0])
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// readRequest reads the request and decides on it. A *RefusedError means
// the request was read completely (or cannot be) and must get that reply.
func readRequest(r io.Reader) (Target, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Target{}, fmt.Errorf("socks: read request: %w", err)
	}
	if hdr[0] != version5 {
		return Target{}, &RefusedError{ReplyGeneralFailure, "bad request version"}
	}
	var host string
	var skip int
	switch hdr[3] {
	case atypIPv4:
		skip = 4
	case atypIPv6:
		skip = 16
	case atypDomain:
		name, err := readShortString(r)
		if err != nil {
			return Target{}, fmt.Errorf("socks: read host: %w", err)
		}
		host = name
	default:
		return Target{}, &RefusedError{ReplyAddressNotSupported, "unknown address type"}
	}
	addrAndPort := make([]byte, skip+2)
	if _, err := io.ReadFull(r, addrAndPort); err != nil {
		return Target{}, fmt.Errorf("socks: read address: %w", err)
	}
	port := int(addrAndPort[skip])<<8 | int(addrAndPort[skip+1])
	switch {
	case hdr[1] != cmdConnect:
		return Target{}, &RefusedError{ReplyCommandNotSupported, "only CONNECT is supported"}
	case hdr[3] != atypDomain:
		return Target{}, &RefusedError{ReplyAddressNotSupported, "only names under .unfed are served"}
	}
	target, ok := overlayTarget(host)
	if !ok || port != overlayHTTPPort {
		return Target{}, &RefusedError{ReplyNotAllowed, "only <model>.unfed port 80 is served"}
	}
	return target, nil
}

// overlayTarget accepts "<model>.unfed" with a trailing dot allowed, in any
// case, where the model part is made of letters, digits, '.', '-' and '_'.
func overlayTarget(host string) (Target, bool) {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	model, ok := strings.CutSuffix(h, overlaySuffix)
	if !ok || model == "" || strings.HasPrefix(model, ".") || strings.HasSuffix(model, ".") {
		return Target{}, false
	}
	for _, c := range model {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return Target{}, false
		}
	}
	return Target{Host: h, Model: model}, true
}
