package managed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// SOCKS5 client for a PT's CMETHOD listener (RFC 1928, RFC 1929), passing the
// per-connection transport arguments as username and password (pt-spec
// §3.5): the "k=v;k=v" string is split after 255 bytes; a password of one NUL
// byte stands for none.
const (
	socksVersion   = 5
	socksAuthUser  = 2
	socksCmdConn   = 1
	socksAtypIPv4  = 1
	socksAtypName  = 3
	socksAtypIPv6  = 4
	socksUserPass  = 1
	maxSOCKSArgLen = 2 * 255
)

// splitArgs splits an encoded argument string into SOCKS5 username and
// password.
func splitArgs(enc string) (user, pass []byte, err error) {
	if len(enc) > maxSOCKSArgLen {
		return nil, nil, fmt.Errorf("managed: arguments of %d bytes exceed the %d a SOCKS5 login carries", len(enc), maxSOCKSArgLen)
	}
	if enc == "" {
		// RFC 1929 forbids empty fields; tor sends a NUL for each.
		return []byte{0}, []byte{0}, nil
	}
	if len(enc) <= 255 {
		return []byte(enc), []byte{0}, nil
	}
	return []byte(enc[:255]), []byte(enc[255:]), nil
}

// socksConnect runs the SOCKS5 handshake on c asking for addr.
func socksConnect(c net.Conn, addr string, user, pass []byte) error {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("managed: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("managed: bad port in %q", addr)
	}
	if _, err := c.Write([]byte{socksVersion, 1, socksAuthUser}); err != nil {
		return fmt.Errorf("managed: socks: %w", err)
	}
	var rep [2]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return fmt.Errorf("managed: socks: %w", err)
	}
	if rep[0] != socksVersion || rep[1] != socksAuthUser {
		return fmt.Errorf("managed: socks: server refused username/password auth (%d %d)", rep[0], rep[1])
	}
	auth := []byte{socksUserPass, byte(len(user))}
	auth = append(auth, user...)
	auth = append(auth, byte(len(pass)))
	auth = append(auth, pass...)
	if _, err := c.Write(auth); err != nil {
		return fmt.Errorf("managed: socks: %w", err)
	}
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return fmt.Errorf("managed: socks: %w", err)
	}
	if rep[1] != 0 {
		return errors.New("managed: socks: PT rejected the transport arguments")
	}
	req := []byte{socksVersion, socksCmdConn, 0}
	if ip := net.ParseIP(host); ip != nil {
		if ip4 := ip.To4(); ip4 != nil {
			req = append(append(req, socksAtypIPv4), ip4...)
		} else {
			req = append(append(req, socksAtypIPv6), ip.To16()...)
		}
	} else {
		if len(host) > 255 {
			return fmt.Errorf("managed: host name of %d bytes", len(host))
		}
		req = append(append(req, socksAtypName, byte(len(host))), host...)
	}
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("managed: socks: %w", err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("managed: socks: %w", err)
	}
	if hdr[0] != socksVersion {
		return fmt.Errorf("managed: socks: reply version %d", hdr[0])
	}
	if hdr[1] != 0 {
		return fmt.Errorf("managed: socks: connect failed, reply %d", hdr[1])
	}
	var skip int
	switch hdr[3] {
	case socksAtypIPv4:
		skip = 4
	case socksAtypIPv6:
		skip = 16
	case socksAtypName:
		var n [1]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return fmt.Errorf("managed: socks: %w", err)
		}
		skip = int(n[0])
	default:
		return fmt.Errorf("managed: socks: reply address type %d", hdr[3])
	}
	if _, err := io.CopyN(io.Discard, c, int64(skip+2)); err != nil {
		return fmt.Errorf("managed: socks: %w", err)
	}
	return nil
}
