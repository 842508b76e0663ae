package relay

// Link listeners (spec/09-relay-operation.md §3): one transport listener per
// configured transport, each wrapped in a link.Listener (per-address limits,
// Noise handshake), every established link handed to the circuit switch and,
// when the peer is a relay, to the link pool for reuse.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/transports"
	"github.com/unfed/unfed/transports/onion"
)

// orListener is one bound link listener.
type orListener struct {
	transport string // registry name: tcp, quic, obfs4
	kind      string // listening line kind: or, or-quic, or-obfs4
	addr      string // bound address
	args      transports.Args
	ln        *link.Listener
}

// advertised returns the transport as the descriptor lists it.
func (l *orListener) advertised(host string) directory.Transport {
	t := directory.Transport{Name: l.transport, Addr: advertiseAddr(l.addr, host)}
	for _, k := range l.args.Keys() {
		for _, v := range l.args[k] {
			t.Args = append(t.Args, k+"="+v)
		}
	}
	return t
}

// advertiseAddr replaces an unspecified bound host (":0" listens on every
// address) with host, so the descriptor names an address peers can dial.
func advertiseAddr(bound, host string) string {
	h, p, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		if host == "" {
			host = "127.0.0.1"
		}
		return net.JoinHostPort(host, p)
	}
	return bound
}

// openListeners binds every configured link listener. On error the ones
// already bound are closed.
func (r *runner) openListeners(ctx context.Context) error {
	type want struct{ transport, kind, addr string }
	var ws []want
	if r.cfg.OR.TCP != "" {
		ws = append(ws, want{"tcp", "or", r.cfg.OR.TCP})
	}
	if r.cfg.OR.QUIC != "" {
		ws = append(ws, want{"quic", "or-quic", r.cfg.OR.QUIC})
	}
	if r.cfg.OR.Obfs4 != "" {
		ws = append(ws, want{"obfs4", "or-obfs4", r.cfg.OR.Obfs4})
	}
	if r.cfg.OR.Onion != "" {
		ws = append(ws, want{onion.Name, "or-onion", r.cfg.OR.Onion})
	}
	for _, w := range ws {
		l, err := r.listen(ctx, w.transport, w.kind, w.addr)
		if err != nil {
			r.closeListeners()
			return err
		}
		r.listeners = append(r.listeners, l)
	}
	return nil
}

func (r *runner) listen(ctx context.Context, name, kind, addr string) (*orListener, error) {
	t, ok := transports.Get(name)
	if name == onion.Name && r.tor != nil {
		t, ok = onion.Transport{Tor: r.tor}, true
	}
	if !ok {
		return nil, fmt.Errorf("relay: transport %q not registered", name)
	}
	tc := transports.Config{Logger: r.log}
	stateDir := ""
	if name == onion.Name {
		stateDir = filepath.Join(r.cfg.DataDir, "onion")
	}
	if name == "obfs4" {
		tc.Options = transports.Args{"iat-mode": {strconv.Itoa(r.cfg.OR.Obfs4IATMode)}}
		stateDir = filepath.Join(r.cfg.DataDir, "obfs4")
	}
	sf, err := t.ServerFactory(tc)
	if err != nil {
		return nil, fmt.Errorf("relay: %s listener: %w", name, err)
	}
	tl, err := sf.Listen(ctx, addr, stateDir)
	if err != nil {
		return nil, fmt.Errorf("relay: %s listener: %w", name, err)
	}
	// A bridge's descriptor goes only to clients that passed obfs4's own
	// authentication (its cert), never to a dialer of a plain listener.
	var desc func() []byte
	if name == "obfs4" || plainBridgeListeners {
		desc = r.bridgeDescriptor()
	}
	ln, err := link.NewListener(tl, link.ListenerConfig{
		Server: link.ServerConfig{Store: r.store, Options: r.linkOpts, Descriptor: desc},
		Logger: r.log,
	})
	if err != nil {
		tl.Close()
		return nil, fmt.Errorf("relay: %s listener: %w", name, err)
	}
	return &orListener{transport: name, kind: kind, addr: tl.Addr().String(), args: tl.Args(), ln: ln}, nil
}

// serveListeners runs one accept loop per listener until they are closed.
func (r *runner) serveListeners(wg *sync.WaitGroup) {
	for _, l := range r.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acceptLinks(l.ln, r.sw, r.pool, r.log)
		}()
	}
}

// acceptLinks hands every link ln establishes to sw, until ln is closed.
func acceptLinks(ln *link.Listener, sw *circuit.Switch, pool *linkPool, log *slog.Logger) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, isRelay := c.Peer()
		if isRelay {
			pool.add(c)
		}
		if err := sw.Accept(pool.rec.wrap(c), !isRelay); err != nil {
			log.Debug("relay: switch refused a link", "err", err)
			c.Close()
		}
	}
}

func (r *runner) closeListeners() {
	for _, l := range r.listeners {
		l.ln.Close()
	}
}

// plainBridgeListeners, set only by tests, restores what issue 23 item 5
// removed: a bridge listening on plain TCP or QUIC and handing its descriptor
// to any dialer there (TestBridgeNotDisclosedOnProbe's mutation).
var plainBridgeListeners bool

// bridgeDescriptor returns, for a bridge, the function that signs the
// descriptor a client receives in the link handshake (spec/01-link.md §4);
// nil for any other relay.
func (r *runner) bridgeDescriptor() func() []byte {
	if !r.st.has(directory.RoleBridge) {
		return nil
	}
	return func() []byte {
		d, err := r.signDescriptor(time.Now())
		if err != nil {
			r.log.Warn("relay: bridge descriptor not signed", "err", err)
			return nil
		}
		return d
	}
}
