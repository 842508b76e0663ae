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

// PatientProber is a Prober some of whose probes may take longer than the
// probing phase: a probe through Tor of a relay that listens only as an
// onion service must wait for Tor to fetch the service's descriptor and
// build introduction and rendezvous circuits, which after the relay
// restarts can take a minute. Patience(d) is how long a probe of d may go
// on after the phase ends (0: it is cancelled with the phase). Such a probe
// runs in the background: its result is recorded when it arrives and
// counts in the next vote, and no second probe of the relay starts while
// it runs (spec §6.2).
type PatientProber interface {
	Prober
	Patience(d *Descriptor) time.Duration
}

// Measurer is a Prober that also measures relays (spec §6.3). An authority
// whose Prober is a Measurer measures the relays its probes found reachable,
// in a phase of its own after the probes, and votes the measured weights;
// one whose Prober is not votes none.
type Measurer interface {
	Prober
	// Measure times the measured exchange through a relay found reachable.
	// An error means the relay is not measured this time; it says nothing
	// about reachability.
	Measure(ctx context.Context, d *Descriptor) (Measurement, error)
}

// Measurement is what measuring one relay found.
type Measurement struct {
	// Bytes is how many bytes of test traffic the relay received, and
	// Elapsed how long the timed part of the exchange took (spec §6.3).
	Bytes   int64
	Elapsed time.Duration
	// Sent and Received count every byte the measurement moved over the
	// transport, its link handshake included (accounting only); set also
	// when the measurement failed.
	Sent, Received int64
}

// MaxWeight is the largest measured or consensus weight (spec §5.1, §6.3).
const MaxWeight = 1<<32 - 1

// Weight returns the measured weight: the acknowledged test bytes per
// second of the timed exchange, in KiB/s, rounded down and kept within
// [1, MaxWeight]; 0 when nothing was measured.
func (m Measurement) Weight() uint64 {
	if m.Bytes <= 0 || m.Elapsed <= 0 {
		return 0
	}
	w := float64(m.Bytes) / 1024 / m.Elapsed.Seconds()
	switch {
	case w < 1:
		return 1
	case w >= MaxWeight:
		return MaxWeight
	}
	return uint64(w)
}
