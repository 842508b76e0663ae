// Package tcp is the plain TCP transport (spec/01-link.md §2.2): no
// arguments, no obfuscation; the Noise link above provides all security.
package tcp

import (
	"context"
	"fmt"
	"net"

	"github.com/unfed/unfed/transports/base"
)

// Name is the transport's registry name.
const Name = "tcp"

// Transport is the tcp transport. The zero value is ready to use.
type Transport struct{}

// Name returns "tcp".
func (Transport) Name() string { return Name }

// ClientFactory returns the tcp client side.
func (Transport) ClientFactory(_ context.Context, cfg base.Config) (base.ClientFactory, error) {
	return clientFactory{dial: cfg.Dial}, nil
}

// ServerFactory returns the tcp server side; tcp takes no options.
func (Transport) ServerFactory(cfg base.Config) (base.ServerFactory, error) {
	if len(cfg.Options) != 0 {
		return nil, fmt.Errorf("tcp: unexpected options %v", cfg.Options.Keys())
	}
	return serverFactory{}, nil
}

type clientFactory struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (f clientFactory) ParseArgs(args base.Args) (base.Dialer, error) {
	if len(args) != 0 {
		return nil, fmt.Errorf("tcp: unexpected arguments %v", args.Keys())
	}
	return Dialer{Dial: f.dial}, nil
}

func (clientFactory) Close() error { return nil }

// Dialer dials plain TCP. The zero value is ready to use.
type Dialer struct {
	// Dial, when set, opens the connection instead of a direct connect
	// (base.Config.Dial: through Tor).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DialContext connects to addr over TCP.
func (d Dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	dial := d.Dial
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: %w", err)
	}
	return c, nil
}

type serverFactory struct{}

func (serverFactory) Listen(ctx context.Context, addr, _ string) (base.Listener, error) {
	return Listen(ctx, addr)
}

// Listen binds a TCP listener on addr that closes when ctx is done.
func Listen(ctx context.Context, addr string) (base.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: %w", err)
	}
	l := &listener{Listener: ln}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	l.stop = stop
	return l, nil
}

type listener struct {
	net.Listener
	stop func() bool
}

func (l *listener) Args() base.Args { return base.Args{} }

func (l *listener) Close() error {
	l.stop()
	return l.Listener.Close()
}
