package relay

// Relay-to-relay links for EXTEND (spec/09-relay-operation.md §4). The pool
// keeps one open link per peer fingerprint, whichever side opened it, and
// dials a new one through the transports the EXTEND's link specifiers name,
// authenticating as this relay (IK with the link key the client gave, XX
// without one). Concurrent dials to one peer share one attempt.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/transports"
	"github.com/unfed/unfed/transports/base"
	"github.com/unfed/unfed/transports/onion"
)

// errNoUsableSpec is returned when no link specifier names a transport we can
// dial.
var errNoUsableSpec = errors.New("relay: no usable link specifier")

// errPrivateTarget is returned for an EXTEND to an address a relay does not
// dial by default (spec/09-relay-operation.md §4).
var errPrivateTarget = errors.New("relay: extend target refused")

// cgnat is RFC 6598 shared address space, private in practice;
// thisNet is RFC 1122's "this network", never a destination.
var (
	cgnat   = netip.MustParsePrefix("100.64.0.0/10")
	thisNet = netip.MustParsePrefix("0.0.0.0/8")
)

// publicTarget refuses, as Tor's ExtendAllowPrivateAddresses 0 does, a
// target that is not a global unicast IP literal: a DNS name (which the
// relay would resolve on a client's behalf), loopback, private, link-local,
// shared, unspecified or multicast addresses. Otherwise a client could use
// relays to reach services on their hosts' internal networks.
func publicTarget(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", errPrivateTarget, addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP literal", errPrivateTarget, host)
	}
	ip = ip.Unmap()
	if ip.Zone() != "" || !ip.IsGlobalUnicast() || ip.IsPrivate() || cgnat.Contains(ip) || thisNet.Contains(ip) {
		return fmt.Errorf("%w: %s is not a public address (extend_allow_private_addresses is off)", errPrivateTarget, ip)
	}
	return nil
}

// dialable are the transports the pool dials, in order of preference; managed
// pluggable transports need a configured binary and are not dialed between
// relays.
var dialable = []string{"tcp", "obfs4", "quic"}

// linkPool is the Dialer of the circuit switch.
type linkPool struct {
	store *keys.Store
	opts  link.Options
	log   *slog.Logger
	ctx   context.Context // the relay's lifetime; factories live under it
	// allowPrivate lets EXTEND dial loopback, private and DNS-named
	// addresses (extend_allow_private_addresses).
	allowPrivate bool

	mu      sync.Mutex
	links   map[keys.Fingerprint]*link.Conn
	dialing map[keys.Fingerprint]*dialCall
	clients map[string]transports.ClientFactory
	closed  bool
	wg      sync.WaitGroup // dial goroutines
	// rec, when set, records what the relay receives (debug.record_links).
	rec *linkRecorder
	// tor, when set, makes onion link specifiers dialable (through Tor).
	tor *onion.Tor
}

type dialCall struct {
	done chan struct{}
	conn *link.Conn
	err  error
}

func newLinkPool(ctx context.Context, store *keys.Store, opts link.Options, log *slog.Logger) *linkPool {
	return &linkPool{store: store, opts: opts, log: log, ctx: ctx,
		links: map[keys.Fingerprint]*link.Conn{}, dialing: map[keys.Fingerprint]*dialCall{},
		clients: map[string]transports.ClientFactory{}}
}

// add records an accepted relay link for reuse, unless a live one exists.
// The link layer hands out an accepted link only after the dialer confirmed
// its keys (spec/01-link.md §3.5), so a replayed handshake never gets here.
func (p *linkPool) add(c *link.Conn) {
	fp, ok := c.Peer()
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if old, ok := p.links[fp]; ok && !isDone(old) {
		return
	}
	p.links[fp] = c
	go p.forget(fp, c)
}

// forget drops c once it closes.
func (p *linkPool) forget(fp keys.Fingerprint, c *link.Conn) {
	<-c.Done()
	p.mu.Lock()
	if p.links[fp] == c {
		delete(p.links, fp)
	}
	p.mu.Unlock()
}

func isDone(c *link.Conn) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// Dial implements circuit.Dialer.
func (p *linkPool) Dial(ctx context.Context, fp keys.Fingerprint, specs []cell.LinkSpec) (circuit.Link, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, circuit.ErrClosed
	}
	if c, ok := p.links[fp]; ok && !isDone(c) {
		p.mu.Unlock()
		return p.rec.wrap(c), nil
	}
	call, ok := p.dialing[fp]
	if !ok {
		call = &dialCall{done: make(chan struct{})}
		p.dialing[fp] = call
		p.wg.Add(1)
		go p.dial(fp, specs, call)
	}
	p.mu.Unlock()
	select {
	case <-call.done:
		if call.err != nil {
			return nil, call.err
		}
		return p.rec.wrap(call.conn), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dial runs one attempt, bounded by the handshake timeout, under the relay's
// lifetime rather than one caller's, since several callers share it.
func (p *linkPool) dial(fp keys.Fingerprint, specs []cell.LinkSpec, call *dialCall) {
	defer p.wg.Done()
	timeout := p.opts.HandshakeTimeout
	if timeout <= 0 {
		timeout = link.DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	c, err := p.dialSpecs(ctx, fp, specs)
	p.mu.Lock()
	delete(p.dialing, fp)
	switch {
	case err != nil:
	case p.closed:
		c.Close()
		c, err = nil, circuit.ErrClosed
	default:
		// Prefer the fresh link we just authenticated ourselves over one
		// the peer dialed meanwhile (spec/09-relay-operation.md §4); the
		// older one stays open for the circuits it carries.
		p.links[fp] = c
		go p.forget(fp, c)
	}
	call.conn, call.err = c, err
	p.mu.Unlock()
	close(call.done)
}

func (p *linkPool) dialSpecs(ctx context.Context, fp keys.Fingerprint, specs []cell.LinkSpec) (*link.Conn, error) {
	var firstErr error
	order := dialable
	if p.tor != nil {
		order = append(slices.Clone(dialable), onion.Name)
	}
	for _, name := range order {
		for _, s := range specs {
			if s.Transport != name {
				continue
			}
			c, err := p.dialSpec(ctx, fp, s)
			if err == nil {
				return c, nil
			}
			p.log.Debug("relay: link dial failed", "transport", s.Transport, "err", err)
			if firstErr == nil {
				firstErr = err
			}
			if ctx.Err() != nil {
				return nil, firstErr
			}
		}
	}
	if firstErr == nil {
		firstErr = errNoUsableSpec
	}
	return nil, firstErr
}

func (p *linkPool) dialSpec(ctx context.Context, fp keys.Fingerprint, s cell.LinkSpec) (*link.Conn, error) {
	if !p.allowPrivate {
		if err := publicTarget(s.Addr); err != nil {
			return nil, err
		}
	}
	d, err := p.transportDialer(s.Transport, s.Args)
	if err != nil {
		return nil, err
	}
	conn, err := d.DialContext(ctx, s.Addr)
	if err != nil {
		return nil, fmt.Errorf("relay: dial %s: %w", s.Transport, err)
	}
	return link.Dial(ctx, conn, link.DialConfig{Identity: p.store, ExpectFingerprint: fp, ExpectLinkKey: s.LinkKey, Options: p.opts})
}

// transportDialer parses a link specifier's arguments with the transport's
// client factory, created once per transport for the relay's lifetime.
func (p *linkPool) transportDialer(name, args string) (transports.Dialer, error) {
	if !slices.Contains(dialable, name) && (name != onion.Name || p.tor == nil) {
		return nil, fmt.Errorf("%w: transport %q", errNoUsableSpec, name)
	}
	a, err := base.ParseArgs(args, ' ')
	if err != nil {
		return nil, fmt.Errorf("relay: %s arguments: %w", name, err)
	}
	p.mu.Lock()
	cf, ok := p.clients[name]
	p.mu.Unlock()
	if !ok {
		t, found := transports.Get(name)
		if name == onion.Name {
			t, found = onion.Transport{Tor: p.tor}, true
		}
		if !found {
			return nil, fmt.Errorf("relay: transport %q not registered", name)
		}
		if cf, err = t.ClientFactory(p.ctx, transports.Config{Logger: p.log}); err != nil {
			return nil, fmt.Errorf("relay: %s client: %w", name, err)
		}
		p.mu.Lock()
		if old, ok := p.clients[name]; ok {
			cf.Close()
			cf = old
		} else {
			p.clients[name] = cf
		}
		p.mu.Unlock()
	}
	return cf.ParseArgs(a)
}

// close closes every pooled link and client factory, after waiting for dials
// in flight (the relay's context is canceled by then, which ends them).
func (p *linkPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
	p.mu.Lock()
	links := p.links
	p.links = map[keys.Fingerprint]*link.Conn{}
	cfs := p.clients
	p.clients = map[string]transports.ClientFactory{}
	p.mu.Unlock()
	for _, c := range links {
		c.Close()
	}
	for _, cf := range cfs {
		cf.Close()
	}
}
