// Package obfs4 is UNFED's in-process obfs4 transport (spec/01-link.md §2.4),
// built on gitlab.com/yawning/obfs4.git's transports/obfs4: the byte stream
// looks uniformly random, and a server answers nothing to anyone without its
// bridge line's cert. The server's identity lives in
// <stateDir>/obfs4_state.json (mode 0600, created on first use and reused);
// clients learn it from a bridge line in Tor's format (bridge.go).
//
// Options, besides obfs4's own iat-mode (0 none, 1 enabled, 2 paranoid):
// "handshake-timeout" (a Go duration) bounds the server handshake and is also
// when a failed probe's connection is closed; without it the library's 30 s
// plus a per-server random delay of up to 60 s apply.
package obfs4

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"gitlab.com/yawning/obfs4.git/common/drbg"
	libbase "gitlab.com/yawning/obfs4.git/transports/base"
	lib "gitlab.com/yawning/obfs4.git/transports/obfs4"
	pt "gitlab.torproject.org/tpo/anti-censorship/pluggable-transports/goptlib"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/transports/base"
)

// Name is the transport's registry name.
const Name = "obfs4"

// Argument and option keys.
const (
	ArgCert             = "cert"
	ArgIATMode          = "iat-mode"
	OptHandshakeTimeout = "handshake-timeout"
	// StateFile is the server state file inside the state directory.
	StateFile = "obfs4_state.json"
)

// maxPendingHandshakes bounds obfs4 server handshakes in flight per
// listener; more connections are closed at once.
const maxPendingHandshakes = 512

// Transport is the obfs4 transport. The zero value is ready to use.
type Transport struct{}

// Name returns "obfs4".
func (Transport) Name() string { return Name }

// ClientFactory returns the obfs4 client side.
func (Transport) ClientFactory(_ context.Context, cfg base.Config) (base.ClientFactory, error) {
	cf, err := (&lib.Transport{}).ClientFactory("")
	if err != nil {
		return nil, fmt.Errorf("obfs4: %w", err)
	}
	return &clientFactory{cf: cf, dial: cfg.Dial}, nil
}

type clientFactory struct {
	cf   libbase.ClientFactory
	dial func(ctx context.Context, network, addr string) (net.Conn, error) // base.Config.Dial
}

func (f *clientFactory) Close() error { return nil }

// ParseArgs checks cert and iat-mode. Each dial prepares a fresh session key
// from them before it connects.
func (f *clientFactory) ParseArgs(args base.Args) (base.Dialer, error) {
	a := pt.Args(args.Clone())
	if _, err := f.cf.ParseArgs(&a); err != nil {
		return nil, fmt.Errorf("obfs4: bad arguments: %w", err)
	}
	return &Dialer{cf: f.cf, args: a, dial: f.dial}, nil
}

// Dialer dials one obfs4 server.
type Dialer struct {
	cf   libbase.ClientFactory
	args pt.Args
	dial func(ctx context.Context, network, addr string) (net.Conn, error) // nil: direct
}

// DialContext connects to addr and completes the obfs4 handshake; ctx
// bounds both.
func (d *Dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	parsed, err := d.cf.ParseArgs(&d.args)
	if err != nil {
		return nil, fmt.Errorf("obfs4: %w", err)
	}
	var (
		mu        sync.Mutex
		raw       net.Conn
		cancelled bool
	)
	dial := d.dial
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	dialFn := func(network, a string) (net.Conn, error) {
		c, err := dial(ctx, network, a)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		raw = c
		if cancelled {
			c.Close()
		}
		return c, nil
	}
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		cancelled = true
		if raw != nil {
			raw.Close()
		}
	})
	c, err := d.cf.Dial("tcp", addr, dialFn, parsed)
	if !stop() || err != nil {
		mu.Lock()
		defer mu.Unlock()
		if c != nil {
			c.Close()
		}
		if cancelled {
			return nil, fmt.Errorf("obfs4: dial: %w", ctx.Err())
		}
		return nil, fmt.Errorf("obfs4: dial: %w", err)
	}
	oc := &conn{Conn: c, raw: raw}
	if iat, _ := d.args.Get(ArgIATMode); iat == "2" {
		if err := oc.waitForSeed(); err != nil {
			c.Close()
			return nil, fmt.Errorf("obfs4: dial: %w", err)
		}
	}
	return oc, nil
}

// conn is an obfs4 conn whose deadlines act on the TCP conn beneath (the
// library's own conn refuses SetDeadline and SetWriteDeadline), and whose
// writes cannot crash the process (iatbug.go).
type conn struct {
	net.Conn
	raw     net.Conn
	pending []byte // payload read by waitForSeed, not yet returned
}

// Read returns bytes waitForSeed read first, then the library's.
func (c *conn) Read(b []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// Write passes b to the library (safeWrite).
func (c *conn) Write(b []byte) (int, error) { return c.safeWrite(b) }

func (c *conn) SetDeadline(t time.Time) error      { return c.raw.SetDeadline(t) }
func (c *conn) SetReadDeadline(t time.Time) error  { return c.raw.SetReadDeadline(t) }
func (c *conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

// ServerFactory checks the server options (iat-mode, handshake-timeout).
func (Transport) ServerFactory(cfg base.Config) (base.ServerFactory, error) {
	sf := &serverFactory{log: base.DiscardLogger(cfg.Logger), iat: -1}
	for _, k := range cfg.Options.Keys() {
		v, _ := cfg.Options.Get(k)
		switch k {
		case ArgIATMode:
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 2 {
				return nil, fmt.Errorf("obfs4: iat-mode %q is not 0, 1 or 2", v)
			}
			sf.iat = n
		case OptHandshakeTimeout:
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("obfs4: bad handshake-timeout %q", v)
			}
			sf.timeout = d
		default:
			return nil, fmt.Errorf("obfs4: unknown option %q", k)
		}
	}
	return sf, nil
}

type serverFactory struct {
	log     *slog.Logger
	iat     int // -1: as stored in the state file
	timeout time.Duration
}

// Listen loads or creates the server identity in stateDir and listens on addr.
func (f *serverFactory) Listen(ctx context.Context, addr, stateDir string) (base.Listener, error) {
	if stateDir == "" {
		return nil, errors.New("obfs4: a state directory is required")
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("obfs4: %w", err)
	}
	sf, err := loadServer(stateDir, f.iat)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("obfs4: %w", err)
	}
	l := &listener{
		ln:      ln,
		sf:      sf,
		timeout: f.timeout,
		log:     f.log,
		conns:   make(chan net.Conn),
		done:    make(chan struct{}),
		sem:     make(chan struct{}, maxPendingHandshakes),
	}
	l.stopCtx = context.AfterFunc(ctx, func() { l.Close() })
	go l.acceptLoop()
	return l, nil
}

// stateJSON is obfs4proxy's server state file.
type stateJSON struct {
	NodeID     string `json:"node-id"`
	PrivateKey string `json:"private-key"`
	PublicKey  string `json:"public-key"`
	DrbgSeed   string `json:"drbg-seed"`
	IATMode    int    `json:"iat-mode"`
}

const maxStateFile = 4096

// loadServer builds the library's server factory from <stateDir>/StateFile,
// creating that file (atomically, 0600) on first use. The library itself
// rewrites its state files non-atomically on every start, so it only ever
// sees a scratch directory; our file is written once and never rewritten.
func loadServer(stateDir string, iat int) (libbase.ServerFactory, error) {
	path := filepath.Join(stateDir, StateFile)
	scratch, err := os.MkdirTemp(stateDir, ".obfs4-scratch-")
	if err != nil {
		return nil, fmt.Errorf("obfs4: %w", err)
	}
	defer os.RemoveAll(scratch)
	args := pt.Args{}
	if iat >= 0 {
		args.Add(ArgIATMode, strconv.Itoa(iat))
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		if fi.Mode().Perm() != 0o600 {
			return nil, fmt.Errorf("obfs4: %s has mode %v, want 0600", path, fi.Mode().Perm())
		}
		if fi.Size() > maxStateFile {
			return nil, fmt.Errorf("obfs4: %s is %d bytes, more than a state file", path, fi.Size())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("obfs4: %w", err)
		}
		var st stateJSON
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("obfs4: %s: %w", path, err)
		}
		seed, err := drbg.SeedFromHex(st.DrbgSeed)
		if err != nil {
			return nil, fmt.Errorf("obfs4: %s: drbg-seed: %w", path, err)
		}
		if seed, err = safeLengthSeed(seed); err != nil {
			return nil, err
		}
		args.Add("node-id", st.NodeID)
		args.Add("private-key", st.PrivateKey)
		args.Add("drbg-seed", seed.Hex())
		if iat < 0 {
			args.Add(ArgIATMode, strconv.Itoa(st.IATMode))
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("obfs4: %w", err)
	}
	sf, err := (&lib.Transport{}).ServerFactory(scratch, &args)
	if err != nil {
		return nil, fmt.Errorf("obfs4: server state: %w", err)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		b, err := os.ReadFile(filepath.Join(scratch, StateFile))
		if err != nil {
			return nil, fmt.Errorf("obfs4: new state: %w", err)
		}
		if err := keys.WriteFileAtomic(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("obfs4: write state: %w", err)
		}
		// Load it as on every later start, so the length table is checked
		// (iatbug.go) from the first connection on.
		return loadServer(stateDir, iat)
	}
	return sf, nil
}

// listener runs each obfs4 server handshake in its own goroutine, so a slow
// or probing peer never holds up Accept.
type listener struct {
	ln      net.Listener
	sf      libbase.ServerFactory
	timeout time.Duration
	log     *slog.Logger
	conns   chan net.Conn
	done    chan struct{}
	once    sync.Once
	err     error
	sem     chan struct{}
	stopCtx func() bool
}

func (l *listener) Addr() net.Addr { return l.ln.Addr() }

func (l *listener) Args() base.Args { return base.Args(*l.sf.Args()).Clone() }

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

func (l *listener) Close() error {
	l.shut(net.ErrClosed)
	return nil
}

func (l *listener) shut(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
		l.ln.Close()
		l.stopCtx()
	})
}

func (l *listener) acceptLoop() {
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			l.shut(fmt.Errorf("obfs4: accept: %w", err))
			return
		}
		select {
		case l.sem <- struct{}{}:
		default:
			raw.Close()
			continue
		}
		go l.wrap(raw)
	}
}

func (l *listener) wrap(raw net.Conn) {
	defer func() { <-l.sem }()
	dc := &clampConn{Conn: raw}
	if l.timeout > 0 {
		dc.limit = time.Now().Add(l.timeout)
	}
	c, err := l.sf.WrapConn(dc)
	if err != nil {
		// The library has already held the conn open, reading and
		// discarding, until its close delay; it is closed now.
		raw.Close()
		// No error text: it may carry the peer's address.
		l.log.Debug("obfs4 handshake failed")
		return
	}
	dc.limit = time.Time{}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return
	}
	select {
	case l.conns <- &conn{Conn: c, raw: raw}:
	case <-l.done:
		c.Close()
	}
}

// clampConn caps the deadlines the obfs4 library sets during the server
// handshake (and while it stalls a failed probe) at limit.
type clampConn struct {
	net.Conn
	limit time.Time
}

func (c *clampConn) clamp(t time.Time) time.Time {
	if !c.limit.IsZero() && (t.IsZero() || t.After(c.limit)) {
		return c.limit
	}
	return t
}

func (c *clampConn) SetDeadline(t time.Time) error     { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *clampConn) SetReadDeadline(t time.Time) error { return c.Conn.SetReadDeadline(c.clamp(t)) }
