package directory

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Prober tests whether a relay is reachable at the addresses its descriptor
// gives. The relay package supplies one that completes a link handshake
// (and, for compute relays, a SETUP for the advertised layer range); the
// default only checks that a TCP connection opens.
type Prober interface {
	Probe(ctx context.Context, d *Descriptor) error
}

// TCPProber reports a relay reachable when a TCP connection to the address
// of its first TCP-based transport (tcp, obfs4) opens. QUIC-only relays are
// not reachable through it.
type TCPProber struct {
	// Timeout bounds the connect; 0 means 5 seconds.
	Timeout time.Duration
}

// Probe implements Prober.
func (p TCPProber) Probe(ctx context.Context, d *Descriptor) error {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	for _, t := range d.Transports {
		if t.Name != "tcp" && t.Name != "obfs4" {
			continue
		}
		dialer := net.Dialer{Timeout: timeout}
		conn, err := dialer.DialContext(ctx, "tcp", t.Addr)
		if err != nil {
			return fmt.Errorf("directory: probe %s: %w", t.Name, err)
		}
		conn.Close()
		return nil
	}
	return errors.New("directory: probe: no TCP-based transport to test")
}
