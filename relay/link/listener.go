package link

// Listener pipeline: transport Accept → per-source-IP admission (token bucket,
// live-link count) and a global cap on handshakes in flight → one goroutine
// per handshake → established links queued for Accept. mu guards ips,
// pending and lastSweep.

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Listener defaults for ListenerConfig fields left zero.
const (
	DefaultHandshakeRate  = 10
	DefaultHandshakeBurst = 20
	DefaultMaxLinksPerIP  = 64
	DefaultMaxPending     = 256
	maxTrackedIPs         = 1 << 16
	sweepEvery            = time.Minute
)

// ListenerConfig configures a Listener. The zero value, plus a Server.Store,
// is ready to use.
type ListenerConfig struct {
	// Server configures each link handshake.
	Server ServerConfig
	// HandshakeRate is the sustained handshakes per second one source IP may
	// start; 0 means 10.
	HandshakeRate rate.Limit
	// HandshakeBurst is how many handshakes one source IP may start at once;
	// 0 means 20.
	HandshakeBurst int
	// MaxLinksPerIP bounds handshaking plus open links from one source IP;
	// 0 means 64.
	MaxLinksPerIP int
	// MaxPending bounds handshakes in flight from all sources; 0 means 256.
	MaxPending int
	// Logger receives listener events (never peer addresses); nil discards.
	Logger *slog.Logger
}

type ipState struct {
	lim    *rate.Limiter
	active int
}

// Listener accepts links on a transport listener, enforcing the limits of
// ListenerConfig. Refused connections are closed before any handshake byte is
// read and counted in unfed_link_refused_total.
type Listener struct {
	ln     net.Listener
	cfg    ListenerConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	links  chan *Conn
	done   chan struct{}
	once   sync.Once
	err    error // set before done closes

	mu        sync.Mutex
	ips       map[string]*ipState
	pending   int
	lastSweep time.Time
}

// NewListener starts accepting links on ln; it owns ln from now on.
func NewListener(ln net.Listener, cfg ListenerConfig) (*Listener, error) {
	if cfg.Server.Store == nil {
		return nil, errors.New("link: listener needs a key store")
	}
	if cfg.HandshakeRate == 0 {
		cfg.HandshakeRate = DefaultHandshakeRate
	}
	if cfg.HandshakeBurst <= 0 {
		cfg.HandshakeBurst = DefaultHandshakeBurst
	}
	if cfg.MaxLinksPerIP <= 0 {
		cfg.MaxLinksPerIP = DefaultMaxLinksPerIP
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{
		ln:        ln,
		cfg:       cfg,
		log:       cfg.Logger,
		ctx:       ctx,
		cancel:    cancel,
		links:     make(chan *Conn),
		done:      make(chan struct{}),
		ips:       make(map[string]*ipState),
		lastSweep: time.Now(),
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	go l.acceptLoop()
	return l, nil
}

// Addr returns the transport listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Accept returns the next established link.
func (l *Listener) Accept() (*Conn, error) {
	select {
	case c := <-l.links:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close stops accepting and aborts handshakes in flight. Established links
// stay open.
func (l *Listener) Close() error {
	l.stop(net.ErrClosed)
	return nil
}

func (l *Listener) stop(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
		l.cancel()
		l.ln.Close()
	})
}

func (l *Listener) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			l.log.Warn("link listener stopped", "err", err)
			l.stop(err)
			return
		}
		backoff = 0
		ip := hostOf(c.RemoteAddr())
		if reason := l.admit(ip); reason != "" {
			l.cfg.Server.Metrics.refuse(reason)
			c.Close()
			continue
		}
		go l.handshake(c, ip)
	}
}

// admit reserves a handshake slot for ip or returns why it may not have one.
func (l *Listener) admit(ip string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.lastSweep) >= sweepEvery || len(l.ips) >= maxTrackedIPs {
		l.sweepLocked()
		l.lastSweep = now
	}
	st := l.ips[ip]
	if st == nil {
		if len(l.ips) >= maxTrackedIPs {
			return "tracked_ips"
		}
		st = &ipState{lim: rate.NewLimiter(l.cfg.HandshakeRate, l.cfg.HandshakeBurst)}
		l.ips[ip] = st
	}
	switch {
	case st.active >= l.cfg.MaxLinksPerIP:
		return "per_ip"
	case l.pending >= l.cfg.MaxPending:
		return "pending"
	case !st.lim.AllowN(now, 1):
		return "rate"
	}
	st.active++
	l.pending++
	return ""
}

// sweepLocked forgets addresses with no links whose bucket has refilled.
func (l *Listener) sweepLocked() {
	for ip, st := range l.ips {
		if st.active == 0 && st.lim.Tokens() >= float64(l.cfg.HandshakeBurst) {
			delete(l.ips, ip)
		}
	}
}

func (l *Listener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.ips[ip]; st != nil && st.active > 0 {
		st.active--
	}
}

func (l *Listener) handshake(c net.Conn, ip string) {
	lc, err := accept(l.ctx, c, storeKeys(l.cfg.Server.Store), l.cfg.Server, func() { l.release(ip) })
	l.mu.Lock()
	l.pending--
	l.mu.Unlock()
	if err != nil {
		l.release(ip)
		// Only the category: transport errors carry the peer's address.
		l.log.Debug("link handshake failed", "reason", resultLabel(err))
		return
	}
	select {
	case l.links <- lc:
	case <-l.done:
		lc.Close()
	}
}

// hostOf returns the IP of addr without its port.
func hostOf(a net.Addr) string {
	switch v := a.(type) {
	case *net.TCPAddr:
		return v.IP.String()
	case *net.UDPAddr:
		return v.IP.String()
	}
	if a == nil {
		return ""
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}
