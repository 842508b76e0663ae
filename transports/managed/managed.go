// Package managed runs an external pluggable-transport binary under Tor's
// PT 1.0 protocol (pt-spec; spec/01-link.md §2.5), so any PT a user has
// installed (Debian's obfs4proxy, lyrebird, …) can carry UNFED links.
//
// Client side: the PT is started with TOR_PT_CLIENT_TRANSPORTS, reports
// "CMETHOD <method> socks5 <addr>", and each dial goes through that SOCKS5
// listener with the bridge's arguments as the SOCKS5 username and password.
// Server side: the PT is started with TOR_PT_SERVER_TRANSPORTS,
// TOR_PT_SERVER_BINDADDR and TOR_PT_ORPORT pointing at a plain TCP listener
// of ours on 127.0.0.1; it reports "SMETHOD <method> <addr> ARGS:…", and the
// connections it forwards are what our listener accepts. The extended OR
// port is not used, so every forwarded connection comes from 127.0.0.1.
//
// The PT process lives until the context given at start is done or the
// factory/listener is closed; its stdin is kept open and closed to stop it
// (TOR_PT_EXIT_ON_STDIN_CLOSE=1), and its stderr goes to the logger.
package managed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/transports/base"
	"github.com/unfed/unfed/transports/obfs4"
)

// Name is the transport's registry name.
const Name = "managed"

// Transport is the managed transport. The zero value is ready to use.
type Transport struct{}

// Name returns "managed".
func (Transport) Name() string { return Name }

// ClientFactory starts the PT in client mode; it lives until ctx is done or
// the factory is closed.
func (Transport) ClientFactory(ctx context.Context, cfg base.Config) (base.ClientFactory, error) {
	if cfg.Dial != nil {
		return nil, fmt.Errorf("managed: %w (the PT process makes its own connections)", base.ErrNoStreamDial)
	}
	return StartClient(ctx, cfg)
}

// ServerFactory checks cfg; Listen starts the PT.
func (Transport) ServerFactory(cfg base.Config) (base.ServerFactory, error) {
	if cfg.PT.Path == "" || !validMethod(cfg.PT.Method) {
		return nil, fmt.Errorf("managed: need a PT path and method, got %q %q", cfg.PT.Path, cfg.PT.Method)
	}
	return &serverFactory{cfg: cfg}, nil
}

// Client is a running client-mode PT.
type Client struct {
	proc    *process
	method  string
	socks   string
	tempDir string
}

// StartClient runs cfg.PT in client mode and waits for its SOCKS5 listener.
func StartClient(ctx context.Context, cfg base.Config) (*Client, error) {
	log := base.DiscardLogger(cfg.Logger)
	c := &Client{method: cfg.PT.Method}
	stateDir := cfg.StateDir
	if stateDir == "" {
		d, err := os.MkdirTemp("", "unfed-pt-")
		if err != nil {
			return nil, fmt.Errorf("managed: %w", err)
		}
		stateDir, c.tempDir = d, d
	}
	proc, err := startProcess(ctx, cfg.PT, []string{
		"TOR_PT_STATE_LOCATION=" + stateDir,
		"TOR_PT_CLIENT_TRANSPORTS=" + cfg.PT.Method,
	}, log)
	if err != nil {
		c.removeTemp()
		return nil, err
	}
	c.proc = proc
	err = proc.setup(ctx, func(l Line) (bool, error) {
		if err := commonSetupError(l); err != nil {
			return false, err
		}
		switch l.Kind {
		case KindCmethod:
			if l.Method != c.method {
				return false, nil
			}
			if l.Proto != "socks5" {
				return false, fmt.Errorf("managed: PT offers %s, we speak socks5", l.Proto)
			}
			c.socks = l.Addr
		case KindCmethodError:
			return false, fmt.Errorf("managed: PT cannot run %s: %s", l.Method, l.Msg)
		case KindCmethodsDone:
			if c.socks == "" {
				return false, fmt.Errorf("managed: PT reported no CMETHOD for %s", c.method)
			}
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	log.Info("pluggable transport client ready", "method", c.method)
	return c, nil
}

// Close stops the PT and waits for it to exit.
func (c *Client) Close() error {
	c.proc.stop()
	c.proc.wait()
	c.removeTemp()
	return nil
}

func (c *Client) removeTemp() {
	if c.tempDir != "" {
		os.RemoveAll(c.tempDir)
	}
}

// SOCKSAddr is the PT's SOCKS5 listener.
func (c *Client) SOCKSAddr() string { return c.socks }

// ParseArgs encodes a bridge's arguments for the SOCKS5 login.
func (c *Client) ParseArgs(args base.Args) (base.Dialer, error) {
	user, pass, err := splitArgs(args.Encode(';', ""))
	if err != nil {
		return nil, err
	}
	return &Dialer{socks: c.socks, user: user, pass: pass}, nil
}

// Dialer dials one peer through the PT.
type Dialer struct {
	socks      string
	user, pass []byte
}

// DialContext asks the PT to connect to addr; ctx bounds the SOCKS5
// exchange.
func (d *Dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", d.socks)
	if err != nil {
		return nil, fmt.Errorf("managed: dial PT: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err = socksConnect(c, addr, d.user, d.pass)
	if !stop() {
		c.Close()
		return nil, fmt.Errorf("managed: dial: %w", ctx.Err())
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

type serverFactory struct{ cfg base.Config }

// Listen starts the PT in server mode bound to addr, forwarding to a plain
// TCP listener of ours on 127.0.0.1. stateDir is the PT's state location.
func (f *serverFactory) Listen(ctx context.Context, addr, stateDir string) (base.Listener, error) {
	return Listen(ctx, f.cfg, addr, stateDir)
}

// Listener is a server-mode PT and the plain listener it forwards to.
type Listener struct {
	inner  net.Listener
	proc   *process
	method string
	addr   net.Addr
	args   base.Args
	once   sync.Once
}

// Listen runs cfg.PT in server mode on addr (":0" picks a port); see
// serverFactory.Listen.
func Listen(ctx context.Context, cfg base.Config, addr, stateDir string) (*Listener, error) {
	if stateDir == "" {
		return nil, errors.New("managed: a state directory is required")
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("managed: %w", err)
	}
	bind, err := bindAddr(addr)
	if err != nil {
		return nil, err
	}
	method := cfg.PT.Method
	var lc net.ListenConfig
	inner, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("managed: OR port: %w", err)
	}
	env := []string{
		"TOR_PT_STATE_LOCATION=" + stateDir,
		"TOR_PT_SERVER_TRANSPORTS=" + method,
		"TOR_PT_SERVER_BINDADDR=" + method + "-" + bind,
		"TOR_PT_ORPORT=" + inner.Addr().String(),
	}
	if len(cfg.Options) > 0 {
		env = append(env, "TOR_PT_SERVER_TRANSPORT_OPTIONS="+transportOptions(method, cfg.Options))
	}
	log := base.DiscardLogger(cfg.Logger)
	proc, err := startProcess(ctx, cfg.PT, env, log)
	if err != nil {
		inner.Close()
		return nil, err
	}
	l := &Listener{inner: inner, proc: proc, method: method}
	err = proc.setup(ctx, func(ln Line) (bool, error) {
		if err := commonSetupError(ln); err != nil {
			return false, err
		}
		switch ln.Kind {
		case KindSmethod:
			if ln.Method != method {
				return false, nil
			}
			ta, err := net.ResolveTCPAddr("tcp", ln.Addr)
			if err != nil {
				return false, fmt.Errorf("managed: SMETHOD address: %w", err)
			}
			l.addr, l.args = ta, ln.Args
		case KindSmethodError:
			return false, fmt.Errorf("managed: PT cannot serve %s: %s", ln.Method, ln.Msg)
		case KindSmethodsDone:
			if l.addr == nil {
				return false, fmt.Errorf("managed: PT reported no SMETHOD for %s", method)
			}
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		l.Close()
		return nil, err
	}
	// The PT lives as long as ctx; so does our forwarding target.
	go func() {
		select {
		case <-ctx.Done():
			l.Close()
		case <-proc.exited:
			log.Warn("pluggable transport server exited", "method", method)
			l.inner.Close()
		}
	}()
	log.Info("pluggable transport server ready", "method", method, "addr", l.addr.String())
	return l, nil
}

// Accept returns the next connection the PT forwarded.
func (l *Listener) Accept() (net.Conn, error) { return l.inner.Accept() }

// Addr is the PT's public address, from its SMETHOD line.
func (l *Listener) Addr() net.Addr { return l.addr }

// Args are the PT's SMETHOD ARGS (obfs4proxy: cert, iat-mode).
func (l *Listener) Args() base.Args { return l.args.Clone() }

// BridgeLine is the line a client needs to reach this listener through the
// relay fp: "METHOD ADDR FINGERPRINT ARGS…", Tor's bridge-line format. With
// a wildcard bind address, replace the host with the relay's public one.
func (l *Listener) BridgeLine(fp keys.Fingerprint) string {
	return obfs4.Bridge{Transport: l.method, Addr: l.addr.String(), Fingerprint: fp, Args: l.args}.String()
}

// Method is the transport name inside the PT.
func (l *Listener) Method() string { return l.method }

// Close stops the PT, waits for it, and closes the forwarding listener.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.proc.stop()
		l.proc.wait()
		l.inner.Close()
	})
	return nil
}

// bindAddr turns ":port" into "0.0.0.0:port"; goptlib wants an IP literal.
func bindAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("managed: %w", err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if net.ParseIP(host) == nil {
		return "", fmt.Errorf("managed: bind address %q must be an IP literal", addr)
	}
	return net.JoinHostPort(host, port), nil
}

// transportOptions formats TOR_PT_SERVER_TRANSPORT_OPTIONS:
// "method:k=v;method:k=v" with '\\', ':', ';' and '=' escaped.
func transportOptions(method string, opts base.Args) string {
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`, `;`, `\;`, `=`, `\=`)
	var parts []string
	for _, k := range opts.Keys() {
		for _, v := range opts[k] {
			parts = append(parts, method+":"+esc.Replace(k)+"="+esc.Replace(v))
		}
	}
	return strings.Join(parts, ";")
}
