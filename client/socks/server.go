// Package socks owns the client proxy's SOCKS5 front (RFC 1928, RFC 1929;
// spec/08-client-api.md §7). A CONNECT to "<model>.unfed" port 80 is not
// forwarded anywhere: the connection is served in-process by an HTTP
// handler (the OpenAI-compatible API of client/openai). Every other
// destination is refused with the fitting reply code. Username/password
// credentials are accepted unchecked and used only as the circuit isolation
// key. Bind it on loopback only.
package socks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/internal/conncap"
)

// Server is a SOCKS5 front for an HTTP handler. Set Handler; the other
// fields' zero values mean the defaults.
type Server struct {
	// Handler serves the HTTP requests tunnelled to <model>.unfed:80.
	Handler http.Handler
	// Logger receives one line per refused handshake; nil discards.
	Logger *slog.Logger
	// HandshakeTimeout bounds the SOCKS handshake. Default 10 s.
	HandshakeTimeout time.Duration
	// MaxConns bounds concurrent connections (handshaking or served),
	// fairly: at the bound a new connection evicts the oldest one that is
	// not serving a request (handshaking, waiting for its first request, or
	// idle); only when all are serving requests does Serve stop accepting
	// until one closes. Default 64.
	MaxConns int
	// ReadHeaderTimeout bounds reading an HTTP request's header. Default 10 s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections. Default 60 s.
	IdleTimeout time.Duration
	// ShutdownGrace is how long in-flight requests may run on after ctx is
	// canceled before their connections are closed. Default 3 s.
	ShutdownGrace time.Duration
}

// Serve accepts SOCKS5 connections on ln until ctx is canceled, then closes
// ln, stops serving and returns nil; it returns an error if accepting
// fails otherwise. In-flight requests get ShutdownGrace to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("socks: Server.Handler is nil")
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	capped := conncap.New(ln, cmp.Or(s.MaxConns, 64))
	conns := &connListener{ch: make(chan net.Conn), done: make(chan struct{}), addr: ln.Addr()}
	hs := &http.Server{
		ConnState:         capped.ConnState,
		Handler:           unfedHostOnly(s.Handler),
		ReadHeaderTimeout: cmp.Or(s.ReadHeaderTimeout, 10*time.Second),
		IdleTimeout:       cmp.Or(s.IdleTimeout, 60*time.Second),
		MaxHeaderBytes:    64 << 10,
		// net/http's own log lines name client addresses: drop them.
		ErrorLog: stdlog.New(io.Discard, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if sc, ok := c.(*servedConn); ok {
				return openai.WithIsolationSource(ctx, "socks", sc.isolation)
			}
			return ctx
		},
	}
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		_ = hs.Serve(conns) // returns when conns is closed
	}()
	stopAccept := context.AfterFunc(ctx, func() { _ = capped.Close() })
	defer stopAccept()

	timeout := cmp.Or(s.HandshakeTimeout, 10*time.Second)
	pending := &connSet{m: make(map[net.Conn]struct{})}
	var wg sync.WaitGroup
	var acceptErr error
	for ctx.Err() == nil {
		c, err := capped.Accept()
		if err != nil {
			if ctx.Err() == nil {
				acceptErr = fmt.Errorf("socks: accept: %w", err)
			}
			break
		}
		pending.add(c)
		wg.Go(func() {
			defer pending.remove(c)
			s.handshake(c, timeout, conns, log)
		})
	}

	// Stop: no new conns reach the HTTP server; in-flight requests get a
	// grace period, then everything is closed.
	conns.Close()
	pending.closeAll()
	wg.Wait()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cmp.Or(s.ShutdownGrace, 3*time.Second))
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		_ = hs.Close()
	}
	<-httpDone
	return acceptErr
}

// handshake runs the SOCKS handshake on c and hands it to the HTTP server.
func (s *Server) handshake(c net.Conn, timeout time.Duration, conns *connListener, log *slog.Logger) {
	sc := &servedConn{Conn: c}
	_ = c.SetDeadline(time.Now().Add(timeout))
	_, auth, err := serverHandshake(c)
	if err != nil {
		var refused *RefusedError
		if errors.As(err, &refused) {
			log.Debug("socks: request refused", "reply", refused.Code, "reason", refused.Reason)
		} else {
			log.Debug("socks: handshake failed", "err", err)
		}
		_ = sc.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	sc.isolation = auth.isolation()
	if !conns.deliver(sc) {
		_ = sc.Close()
	}
}

// unfedHostOnly refuses HTTP requests whose Host is not under .unfed: the
// SOCKS front serves the overlay, never a web proxy.
func unfedHostOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		target, ok := overlayTarget(host)
		if !ok {
			openai.WriteError(w, &openai.APIError{Status: http.StatusMisdirectedRequest, Type: "invalid_request_error",
				Code: "misdirected_request", Message: "the SOCKS front serves only <model>.unfed hosts"})
			return
		}
		defaultModel(r, target.Model)
		h.ServeHTTP(w, r)
	})
}

// servedConn is a connection past its handshake; its Conn is the
// capped listener's, whose Close frees the slot.
type servedConn struct {
	net.Conn
	isolation string
}

// Unwrap returns the capped listener's connection (conncap finds its slot
// through it).
func (c *servedConn) Unwrap() net.Conn { return c.Conn }

// connSet tracks connections still in their handshake, to close them on
// shutdown.
type connSet struct {
	mu     sync.Mutex
	m      map[net.Conn]struct{}
	closed bool
}

func (s *connSet) add(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return
	}
	s.m[c] = struct{}{}
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, c)
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.m {
		_ = c.Close()
	}
}

// connListener is a net.Listener fed with handshaken connections, so that
// one http.Server serves them all.
type connListener struct {
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	addr      net.Addr
}

func (l *connListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }
