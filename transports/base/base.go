// Package base defines the one interface every UNFED transport implements
// (spec/01-link.md §2), in the style of obfs4's transports/base: a Transport
// has a name, a client factory that parses a peer's published arguments before
// the network is touched and then dials, and a server factory that listens and
// publishes the arguments clients need. Everything yields a standard net.Conn
// or net.Listener, so the link layer above does not know which transport
// carries it.
//
// Only the transport implementations and the transports registry import this
// package; everyone else uses package transports.
package base

import (
	"context"
	"errors"
	"log/slog"
	"net"
)

// Transport is one way of carrying a byte stream between two addresses.
type Transport interface {
	// Name is the transport's registry name, a C identifier ("tcp", "obfs4").
	Name() string
	// ClientFactory prepares the client side. Any helper process it starts
	// lives until ctx is done or the factory is closed.
	ClientFactory(ctx context.Context, cfg Config) (ClientFactory, error)
	// ServerFactory prepares the server side; it validates cfg.Options but
	// does not touch the network.
	ServerFactory(cfg Config) (ServerFactory, error)
}

// Config is what a transport needs besides the per-peer arguments. The zero
// value is ready to use for tcp, quic and obfs4.
type Config struct {
	// Logger receives transport events; nil discards them.
	Logger *slog.Logger
	// StateDir is where a client factory may keep state (the managed PT's
	// TOR_PT_STATE_LOCATION); empty means a fresh temporary directory.
	StateDir string
	// Options are transport-specific server options (obfs4: iat-mode; managed:
	// passed through TOR_PT_SERVER_TRANSPORT_OPTIONS).
	Options Args
	// PT configures the managed transport; other transports ignore it.
	PT PTConfig
	// Dial, when set, opens the client's underlying TCP connections instead
	// of a direct connect: a Tor SOCKS dialer, so that the peer sees a Tor
	// relay's address rather than ours. tcp and obfs4 use it; quic (UDP)
	// and managed (its own process dials) refuse a Config that sets it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ErrNoStreamDial is returned by transports that cannot carry their
// connections over Config.Dial.
var ErrNoStreamDial = errors.New("transport cannot be dialed through a stream proxy such as Tor")

// PTConfig names an external pluggable-transport binary run under Tor's
// PT 1.0 protocol.
type PTConfig struct {
	// Path is the executable, e.g. "/usr/bin/obfs4proxy".
	Path string
	// Args are extra command-line arguments for the executable.
	Args []string
	// Method is the transport name inside the binary, e.g. "obfs4".
	Method string
}

// ClientFactory is the client side of a transport.
type ClientFactory interface {
	// ParseArgs validates a peer's published arguments and prepares any
	// per-connection secrets before the network is touched.
	ParseArgs(args Args) (Dialer, error)
	// Close releases what the factory holds (a managed PT process).
	Close() error
}

// Dialer dials one peer whose arguments have been parsed.
type Dialer interface {
	// DialContext connects to addr and completes the transport handshake;
	// the returned conn carries the link layer's bytes.
	DialContext(ctx context.Context, addr string) (net.Conn, error)
}

// ServerFactory is the server side of a transport.
type ServerFactory interface {
	// Listen binds addr (":0" picks a port; Addr reports it), keeping any
	// server state under stateDir. Accepted conns have already completed the
	// transport handshake. The listener closes when ctx is done.
	Listen(ctx context.Context, addr, stateDir string) (Listener, error)
}

// Listener is a net.Listener that also reports the arguments a client needs.
type Listener interface {
	net.Listener
	// Args are the arguments to publish for this listener (obfs4's cert and
	// iat-mode); empty for transports that need none.
	Args() Args
}

// DiscardLogger returns l, or a logger that drops everything when l is nil.
func DiscardLogger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}
