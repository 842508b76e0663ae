package relay

// The reachability prober authorities use (spec/09-relay-operation.md §7,
// spec/04-directory.md §6.2): a client-style link handshake (NK, pinned to
// the descriptor's fingerprint and link key) over the relay's first tcp or
// obfs4 transport; for a compute relay also a one-hop circuit and a SETUP of
// the advertised model and layer range, answered by SETUP_OK, then TEARDOWN.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/relay/origin"
	"github.com/unfed/unfed/transports"
	"github.com/unfed/unfed/transports/base"
	"github.com/unfed/unfed/transports/onion"
)

// ErrProbe is wrapped by every probe failure.
var ErrProbe = errors.New("relay: probe failed")

// LinkProber is a directory.Prober that completes a real link handshake and,
// for compute relays, a compute SETUP; as a directory.Measurer it also times
// the measured exchange (prober_measure.go). The zero value is ready to use.
type LinkProber struct {
	// Logger receives one debug line per failed probe; nil discards.
	Logger *slog.Logger
	// Options tune the probe's link; the zero value means link's defaults.
	Options link.Options
	// Tor, when set, lets the prober reach relays that listen only as
	// onion services, through Tor; without it they are unreachable.
	Tor *onion.Tor
	// Layers, when set, gives a model's layer count (the authority's
	// catalog), so that the probe of a compute relay sends the SETUP its
	// range needs (an out-edge key unless the range ends the model) at
	// once. Without it, or for a model it does not know, the probe sends
	// the key and, refused, retries without: two more round trips.
	Layers func(model string) (int, bool)
}

// Probe rounds after the link handshake (spec/09-relay-operation.md §7):
// each request and its answer (CREATE/CREATED, SETUP/SETUP_OK) must come
// within probeRTTFactor times the handshake's duration — one round trip
// plus the relay's handshake work, measured on this very link — and never
// less than probeRoundFloor, which leaves a loaded relay time for its own
// work (as TCP's minimum retransmission timeout does). The bound scales
// with distance: a relay 300 ms away gets 1.2 s per round beyond the
// floor's, a relay behind Tor several seconds; a relay that completes the
// handshake and then hangs is given up on after a few of its own round
// trips, not after the authority's whole probing phase.
const (
	probeRTTFactor  = 4
	probeRoundFloor = 2 * time.Second
)

// roundTimeout bounds one probe round on a link whose handshake took rtt.
func roundTimeout(rtt time.Duration) time.Duration {
	return max(probeRoundFloor, probeRTTFactor*rtt)
}

// OnionProbePatience is how long a probe through Tor of a relay that listens
// only as an onion service may go on after the authority's probing phase
// (directory.PatientProber): long enough for Tor to fetch a new descriptor
// of the service and build introduction and rendezvous circuits after the
// relay restarts (tens of seconds at worst in our runs), short enough that
// a relay gone silent is not kept Running long by a hung probe. Half of
// Tor's own stream timeout (SocksTimeout, 2 minutes).
const OnionProbePatience = time.Minute

// Patience implements directory.PatientProber: a probe of a relay reached
// only through Tor may outlast the probing phase by OnionProbePatience;
// every other probe ends with its phase.
func (p *LinkProber) Patience(d *directory.Descriptor) time.Duration {
	if t, ok := probeTransport(d, p.Tor != nil); ok && t.Name == onion.Name {
		return OnionProbePatience
	}
	return 0
}

var _ directory.PatientProber = (*LinkProber)(nil)

// NewLinkProber returns a LinkProber logging to logger (nil discards).
func NewLinkProber(logger *slog.Logger) *LinkProber {
	return &LinkProber{Logger: logger}
}

var _ directory.Prober = (*LinkProber)(nil)

// Probe implements directory.Prober. ctx bounds the whole probe.
func (p *LinkProber) Probe(ctx context.Context, d *directory.Descriptor) error {
	return p.probe(ctx, d, nil)
}

// probe is Probe, counting the transport bytes into n when it is not nil.
func (p *LinkProber) probe(ctx context.Context, d *directory.Descriptor, n *byteCount) error {
	lc, rtt, err := p.open(ctx, d, n)
	if err != nil {
		return err
	}
	defer lc.Close()
	return p.setup(ctx, lc, d, roundTimeout(rtt))
}

// open dials the descriptor's first tcp or obfs4 transport and completes a
// client link handshake pinned to its fingerprint and link key, and returns
// how long the handshake took (one round trip and the relay's handshake
// work). With n, the transport bytes the link moves are counted into it.
func (p *LinkProber) open(ctx context.Context, d *directory.Descriptor, n *byteCount) (*link.Conn, time.Duration, error) {
	t, ok := probeTransport(d, p.Tor != nil)
	if !ok {
		return nil, 0, fmt.Errorf("%w: no tcp or obfs4 transport (nor onion, with a Tor)", ErrProbe)
	}
	conn, err := p.dialTransport(ctx, t)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrProbe, err)
	}
	if n != nil {
		conn = &countingConn{Conn: conn, n: n}
	}
	start := time.Now()
	lc, err := link.Dial(ctx, conn, link.DialConfig{ExpectFingerprint: d.Fingerprint(), ExpectLinkKey: d.LinkKey, Options: p.Options})
	if err != nil {
		conn.Close()
		return nil, 0, fmt.Errorf("%w: %w", ErrProbe, err)
	}
	return lc, time.Since(start), nil
}

// setup completes the probe of a compute relay on lc: SETUP of its model
// and range on a one-hop circuit, each round within round. Other relays
// need nothing more.
func (p *LinkProber) setup(ctx context.Context, lc *link.Conn, d *directory.Descriptor, round time.Duration) error {
	if !d.HasRole(directory.RoleCompute) || d.Compute == nil {
		return nil
	}
	log := base.DiscardLogger(p.Logger)
	mux := origin.NewMux(lc, log)
	defer mux.Close()
	hi := origin.HopInfo{Fingerprint: d.Fingerprint(), IdentityKey: d.Identity, OnionKey: d.Onion.X25519, XWingKey: d.Onion.XWing}
	// A shard that is not the model's last needs an out-edge key and the
	// last one refuses it. The descriptor does not say which; the
	// catalog's layer count does, else a rejection of the out-edge key is
	// retried without one.
	out, known := true, false
	if p.Layers != nil {
		if n, ok := p.Layers(d.Compute.Model); ok {
			out, known = d.Compute.Layers.Last < n, true
		}
	}
	err := probeSetup(ctx, mux, hi, d.Compute, out, round, log)
	var he *hop.Error
	if !known && errors.As(err, &he) && he.Code == hop.CodeBadMessage {
		err = probeSetup(ctx, mux, hi, d.Compute, false, round, log)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProbe, err)
	}
	return nil
}

// probeSetup builds a one-hop circuit, sends SETUP and waits for SETUP_OK,
// each round within round.
func probeSetup(ctx context.Context, mux *origin.Mux, hi origin.HopInfo, ci *directory.ComputeInfo, out bool, round time.Duration, log *slog.Logger) error {
	bctx, cancel := context.WithTimeout(ctx, round)
	circ, err := mux.Build(bctx, []origin.HopInfo{hi}, origin.Options{Logger: log})
	cancel()
	if err != nil {
		return fmt.Errorf("circuit: %w", err)
	}
	defer circ.Destroy()
	var in hop.EdgeSecret // the probe never sends activations: any key will do
	s := &hop.Setup{Role: hop.RoleCompute, Input: hop.InputActivations, DType: hop.F32, First: ci.Layers.First,
		Last: ci.Layers.Last, MaxContext: 1, TopK: 1, ModelID: ci.Model, In: &in}
	if out {
		s.Out, s.OutHops = &in, 1
	}
	sctx, cancel := context.WithTimeout(ctx, round)
	defer cancel()
	if err := circ.Send(sctx, 0, s.Append(nil)); err != nil {
		return err
	}
	_, b, err := circ.Recv(sctx)
	if err != nil {
		return fmt.Errorf("SETUP: %w", err)
	}
	m, err := hop.Decode(b)
	if err != nil {
		return err
	}
	switch m := m.(type) {
	case *hop.SetupOK:
		if m.ModelID != ci.Model || m.First != ci.Layers.First || m.Last != ci.Layers.Last {
			return errors.New("SETUP_OK for another model or range")
		}
		// Best effort: the circuit's destruction ends the session anyway.
		_ = circ.Send(ctx, 0, (&hop.Teardown{}).Append(nil))
		return nil
	case *hop.Error:
		if m.Code == hop.CodeCapacity {
			return nil // it serves the model and range, and is busy
		}
		return m
	default:
		return fmt.Errorf("unexpected %v", m.Type())
	}
}

// probeTransport picks the descriptor's first tcp or obfs4 transport, else,
// when the prober has a Tor, its onion transport.
func probeTransport(d *directory.Descriptor, viaTor bool) (directory.Transport, bool) {
	for _, t := range d.Transports {
		if t.Name == "tcp" || t.Name == "obfs4" {
			return t, true
		}
	}
	for _, t := range d.Transports {
		if viaTor && t.Name == onion.Name {
			return t, true
		}
	}
	return directory.Transport{}, false
}

// dialTransport opens a transport connection to t with its published
// arguments.
func (p *LinkProber) dialTransport(ctx context.Context, t directory.Transport) (net.Conn, error) {
	tr, ok := transports.Get(t.Name)
	if t.Name == onion.Name && p.Tor != nil {
		tr, ok = onion.Transport{Tor: p.Tor}, true
	}
	if !ok {
		return nil, fmt.Errorf("transport %q not registered", t.Name)
	}
	args := transports.Args{}
	for _, kv := range t.Args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%s argument without '='", t.Name)
		}
		args.Add(k, v)
	}
	cf, err := tr.ClientFactory(ctx, transports.Config{})
	if err != nil {
		return nil, err
	}
	defer cf.Close()
	d, err := cf.ParseArgs(args)
	if err != nil {
		return nil, err
	}
	return d.DialContext(ctx, t.Addr)
}
