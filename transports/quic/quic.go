// Package quic is the QUIC transport (spec/01-link.md §2.3), on quic-go.
//
// Each link is one QUIC connection carrying exactly one bidirectional stream,
// opened by the dialer; circuits are multiplexed inside the link's frames, not
// on QUIC streams (the spec explains why). TLS 1.3 uses an ephemeral
// self-signed certificate and ALPN "unfed/1"; neither side verifies the
// certificate, because the Noise link above authenticates the relay.
package quic

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/unfed/unfed/transports/base"
)

// Name is the transport's registry name.
const Name = "quic"

// ALPN is the TLS application protocol both sides require.
const ALPN = "unfed/1"

const (
	streamAcceptTimeout = 20 * time.Second
	maxPendingStreams   = 512
)

func quicConfig() *quicgo.Config {
	return &quicgo.Config{
		HandshakeIdleTimeout: 10 * time.Second,
		// The link layer's own keepalives and idle timeout govern liveness;
		// QUIC only has to outlast them.
		MaxIdleTimeout:        10 * time.Minute,
		KeepAlivePeriod:       30 * time.Second,
		MaxIncomingStreams:    1,
		MaxIncomingUniStreams: -1,
	}
}

// Transport is the quic transport. The zero value is ready to use.
type Transport struct{}

// Name returns "quic".
func (Transport) Name() string { return Name }

// ClientFactory returns the quic client side.
func (Transport) ClientFactory(_ context.Context, cfg base.Config) (base.ClientFactory, error) {
	if cfg.Dial != nil {
		return nil, fmt.Errorf("quic: %w (QUIC runs over UDP)", base.ErrNoStreamDial)
	}
	return clientFactory{}, nil
}

type clientFactory struct{}

func (clientFactory) Close() error { return nil }

func (clientFactory) ParseArgs(args base.Args) (base.Dialer, error) {
	if len(args) != 0 {
		return nil, fmt.Errorf("quic: unexpected arguments %v", args.Keys())
	}
	return Dialer{}, nil
}

// Dialer dials QUIC links. The zero value is ready to use.
type Dialer struct{}

// DialContext opens a QUIC connection to addr and its one stream.
func (Dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	tlsConf := &tls.Config{
		// The certificate is ephemeral and unauthenticated by design: the
		// Noise link above checks the relay's identity (spec §2.3).
		InsecureSkipVerify: true, //nolint:gosec
		NextProtos:         []string{ALPN},
		MinVersion:         tls.VersionTLS13,
	}
	qc, err := quicgo.DialAddr(ctx, addr, tlsConf, quicConfig())
	if err != nil {
		return nil, fmt.Errorf("quic: dial: %w", err)
	}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		qc.CloseWithError(0, "")
		return nil, fmt.Errorf("quic: open stream: %w", err)
	}
	return &streamConn{Stream: st, qc: qc}, nil
}

// ServerFactory returns the quic server side; quic takes no options.
func (Transport) ServerFactory(cfg base.Config) (base.ServerFactory, error) {
	if len(cfg.Options) != 0 {
		return nil, fmt.Errorf("quic: unexpected options %v", cfg.Options.Keys())
	}
	return serverFactory{log: base.DiscardLogger(cfg.Logger)}, nil
}

type serverFactory struct{ log *slog.Logger }

// Listen binds a UDP socket on addr with a fresh self-signed certificate.
func (f serverFactory) Listen(ctx context.Context, addr, _ string) (base.Listener, error) {
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{ALPN},
		MinVersion:   tls.VersionTLS13,
	}
	ql, err := quicgo.ListenAddr(addr, tlsConf, quicConfig())
	if err != nil {
		return nil, fmt.Errorf("quic: listen: %w", err)
	}
	lctx, cancel := context.WithCancel(ctx)
	l := &listener{ql: ql, ctx: lctx, cancel: cancel, log: f.log,
		conns: make(chan net.Conn), sem: make(chan struct{}, maxPendingStreams)}
	go l.acceptLoop()
	return l, nil
}

type listener struct {
	ql     *quicgo.Listener
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	conns  chan net.Conn
	sem    chan struct{}
	once   sync.Once
	mu     sync.Mutex
	err    error
}

func (l *listener) Addr() net.Addr  { return l.ql.Addr() }
func (l *listener) Args() base.Args { return base.Args{} }

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting; established links stay open.
func (l *listener) Close() error {
	l.once.Do(func() {
		l.cancel()
		l.ql.Close()
	})
	return nil
}

func (l *listener) acceptLoop() {
	defer l.Close()
	for {
		qc, err := l.ql.Accept(l.ctx)
		if err != nil {
			if l.ctx.Err() == nil && !errors.Is(err, quicgo.ErrServerClosed) {
				l.mu.Lock()
				l.err = fmt.Errorf("quic: accept: %w", err)
				l.mu.Unlock()
			}
			return
		}
		select {
		case l.sem <- struct{}{}:
		default:
			qc.CloseWithError(0, "")
			continue
		}
		go l.acceptStream(qc)
	}
}

func (l *listener) acceptStream(qc *quicgo.Conn) {
	defer func() { <-l.sem }()
	ctx, cancel := context.WithTimeout(l.ctx, streamAcceptTimeout)
	defer cancel()
	st, err := qc.AcceptStream(ctx)
	if err != nil {
		qc.CloseWithError(0, "")
		l.log.Debug("quic connection opened no stream")
		return
	}
	select {
	case l.conns <- &streamConn{Stream: st, qc: qc}:
	case <-l.ctx.Done():
		qc.CloseWithError(0, "")
	}
}

// streamConn is a link's one stream as a net.Conn. Closing it closes the
// whole QUIC connection.
type streamConn struct {
	*quicgo.Stream
	qc *quicgo.Conn
}

func (c *streamConn) LocalAddr() net.Addr  { return c.qc.LocalAddr() }
func (c *streamConn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

func (c *streamConn) Close() error {
	c.Stream.CancelRead(0)
	c.Stream.Close()
	return c.qc.CloseWithError(0, "")
}

// selfSigned makes a throwaway ECDSA P-256 certificate.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("quic: certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("quic: certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "unfed"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("quic: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
