package client

// Circuits: dial the guard over the configured transport, run the link
// handshake as a client (no identity; the guard's fingerprint and link key
// from the consensus), build the onion circuit hop by hop (relay/origin), then
// open a compute session on every compute hop with SETUP (spec/03-compute.md
// §3.2) and wait for each SETUP_OK.
//
// Positions on the circuit: 0 is the guard; in MPC mode 1 and 2 are the pair
// A and B and 3.. the shards S1..Sn; in plain mode 1.. are S0..Sn.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/relay/origin"
	"github.com/unfed/unfed/transports"
	"github.com/unfed/unfed/transports/onion"
)

// hopFailure attributes a circuit failure to one relay of the path when it
// can: Relay is zero when the failure could not be pinned on anyone.
type hopFailure struct {
	Relay keys.Fingerprint
	// Also is a second relay the failure is pinned on, when the client
	// cannot tell which of two lied (confidential commitments that
	// disagree, spec/11 §7.2); zero otherwise.
	Also  keys.Fingerprint
	Guard bool // the failure is the guard's (dial, link handshake)
	Err   error
}

func (e *hopFailure) Error() string { return e.Err.Error() }
func (e *hopFailure) Unwrap() error { return e.Err }

// dialer opens links to guards. It caches one client factory per transport
// and keeps one link per guard, which all circuits through that guard share
// (as Tor's channels do): circuits stay separate, only the link handshake
// is not repeated, and a guard's per-address handshake limit is not spent
// on every circuit.
type dialer struct {
	preferred string
	log       *slog.Logger
	// managed, when set, runs an external PT binary for its Method.
	managed *transports.PTConfig
	// wrapGuardLink, set only by tests, wraps each new guard link (to record
	// what the guard sees).
	wrapGuardLink func(circuit.Link) circuit.Link
	// tor, when set, carries every guard dial (tor.enabled).
	tor *onion.Tor

	mu        sync.Mutex // guards factories and links
	factories map[string]transports.ClientFactory
	links     map[keys.Fingerprint]*guardLink
}

// guardLink is the shared link to one guard, or the dial in progress.
type guardLink struct {
	ready chan struct{} // closed when the dial is done
	mux   *origin.Mux   // nil if the dial failed
	err   error
}

func newDialer(preferred string, log *slog.Logger) *dialer {
	if preferred == "" {
		preferred = "tcp"
	}
	return &dialer{preferred: preferred, log: log, factories: map[string]transports.ClientFactory{},
		links: map[keys.Fingerprint]*guardLink{}}
}

// guardMux returns the open link to g, dialing it if there is none or the
// last one failed. Concurrent callers share one dial.
func (d *dialer) guardMux(ctx context.Context, g *directory.RouterStatus) (*origin.Mux, error) {
	d.mu.Lock()
	if d.links == nil {
		d.mu.Unlock()
		return nil, errors.New("client: shutting down")
	}
	gl := d.links[g.Fingerprint]
	if gl != nil {
		select {
		case <-gl.ready:
			if gl.mux == nil || gl.mux.Closed() { // the dial failed or the link closed: dial again
				gl = nil
			}
		default: // a dial is in progress: wait for it below
		}
	}
	if gl == nil {
		gl = &guardLink{ready: make(chan struct{})}
		d.links[g.Fingerprint] = gl
		d.mu.Unlock()
		lc, err := d.dialGuard(ctx, g)
		if err == nil {
			var l circuit.Link = lc
			if d.wrapGuardLink != nil {
				l = d.wrapGuardLink(l)
			}
			gl.mux = origin.NewMux(l, d.log)
		}
		gl.err = err
		close(gl.ready)
		d.mu.Lock()
		if d.links == nil && gl.mux != nil { // closed while dialing
			gl.mux.Close()
		}
		d.mu.Unlock()
		return gl.mux, gl.err
	}
	d.mu.Unlock()
	select {
	case <-gl.ready:
		return gl.mux, gl.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *dialer) factory(ctx context.Context, name string) (transports.ClientFactory, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.factories == nil {
		return nil, errors.New("client: shutting down")
	}
	if f, ok := d.factories[name]; ok {
		return f, nil
	}
	cfg := transports.Config{Logger: d.log}
	tname := name
	if d.managed != nil && d.managed.Method == name {
		tname, cfg.PT = "managed", *d.managed
	}
	t, ok := transports.Get(tname)
	if d.tor != nil {
		cfg.Dial = d.tor.DialContext
		if name == onion.Name {
			t, ok = onion.Transport{Tor: d.tor}, true
		}
	}
	if !ok {
		return nil, fmt.Errorf("client: unknown transport %q", name)
	}
	// The factory outlives the dial's context: a background one.
	f, err := t.ClientFactory(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return nil, fmt.Errorf("client: transport %s: %w", name, err)
	}
	d.factories[name] = f
	return f, nil
}

func (d *dialer) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, gl := range d.links {
		select {
		case <-gl.ready:
			if gl.mux != nil {
				gl.mux.Close()
			}
		default: // closed by its dialer once the dial returns
		}
	}
	d.links = nil
	for _, f := range d.factories {
		f.Close()
	}
	d.factories = nil
}

// pickTransport returns the guard's address for the preferred transport,
// else its tcp one.
func (d *dialer) pickTransport(g *directory.RouterStatus) (*directory.Transport, error) {
	for _, want := range []string{d.preferred, "tcp"} {
		for i := range g.Transports {
			if g.Transports[i].Name == want {
				return &g.Transports[i], nil
			}
		}
	}
	// A bridge is reached only the way its bridge line says.
	if len(g.Transports) == 1 {
		return &g.Transports[0], nil
	}
	return nil, fmt.Errorf("client: guard offers neither %s nor tcp", d.preferred)
}

func parseArgs(kv []string) transports.Args {
	a := transports.Args{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		a.Add(k, v)
	}
	return a
}

// dialGuard opens a client link to g.
func (d *dialer) dialGuard(ctx context.Context, g *directory.RouterStatus) (*link.Conn, error) {
	tr, err := d.pickTransport(g)
	if err != nil {
		return nil, err
	}
	f, err := d.factory(ctx, tr.Name)
	if err != nil {
		return nil, err
	}
	td, err := f.ParseArgs(parseArgs(tr.Args))
	if err != nil {
		return nil, fmt.Errorf("client: guard transport args: %w", err)
	}
	conn, err := td.DialContext(ctx, tr.Addr)
	if err != nil {
		return nil, fmt.Errorf("client: dial guard: %w", err)
	}
	lc, err := link.Dial(ctx, conn, link.DialConfig{ExpectFingerprint: g.Fingerprint, ExpectLinkKey: g.LinkKey})
	if err != nil {
		return nil, fmt.Errorf("client: guard link: %w", err)
	}
	return lc, nil
}

// hopInfo converts a consensus entry to what origin needs.
func hopInfo(r *directory.RouterStatus) origin.HopInfo {
	h := origin.HopInfo{Fingerprint: r.Fingerprint, IdentityKey: r.Identity, OnionKey: r.Onion.X25519, XWingKey: r.Onion.XWing}
	for _, t := range r.Transports {
		h.LinkSpecs = append(h.LinkSpecs, cell.LinkSpec{Transport: t.Name, Addr: t.Addr, LinkKey: r.LinkKey, Args: strings.Join(t.Args, " ")})
	}
	return h
}

// buildCircuit extends a circuit through every hop of p over the shared
// link to p's guard.
func (d *dialer) buildCircuit(ctx context.Context, p *Path, hybrid bool) (*origin.Circuit, error) {
	guard := p.Hops[0]
	m, err := d.guardMux(ctx, guard)
	if err != nil {
		return nil, &hopFailure{Relay: guard.Fingerprint, Guard: true, Err: err}
	}
	hs := make([]origin.HopInfo, len(p.Hops))
	for i, r := range p.Hops {
		hs[i] = hopInfo(r)
	}
	c, err := m.Build(ctx, hs, origin.Options{Hybrid: hybrid, Logger: d.log})
	if err != nil {
		var ee *origin.ExtendError
		if errors.As(err, &ee) && ee.Hop+1 < len(p.Hops) {
			return nil, &hopFailure{Relay: p.Hops[ee.Hop+1].Fingerprint, Err: fmt.Errorf("client: build circuit: %w", err)}
		}
		return nil, fmt.Errorf("client: build circuit: %w", err)
	}
	return c, nil
}

func newSecret() (*hop.EdgeSecret, error) {
	var s hop.EdgeSecret
	if _, err := rand.Read(s[:]); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &s, nil
}

// anonymousSetups returns the SETUP of every compute hop of an anonymous
// path, in circuit order, with fresh edge secrets: S0 takes the embedding
// rows the client computes (HIDDEN), each shard sends its activations to
// the next, and the last returns the final hidden state, to which the
// client applies the final norm and the output head (spec/03 §3.11).
func anonymousSetups(p *Path, modelID string) ([]*hop.Setup, error) {
	var out []*hop.Setup
	var in *hop.EdgeSecret
	for i, sh := range p.Shards {
		s := &hop.Setup{Role: hop.RoleCompute, Input: hop.InputActivations, First: sh.First, Last: sh.Last, ModelID: modelID, In: in}
		if i == 0 {
			s.Input = hop.InputHidden
		}
		out = append(out, s)
		if i < len(p.Shards)-1 {
			var err error
			if in, err = newSecret(); err != nil {
				return nil, err
			}
			s.Out, s.OutHops = in, 1
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no compute hops", ErrNoPath)
	}
	out[len(out)-1].HiddenOut = true
	return out, nil
}
