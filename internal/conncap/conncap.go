// Package conncap caps a listener's connections fairly (issue 22): when
// the cap is reached, a new connection evicts the oldest connection that is
// not serving a request (still in its handshake, waiting for its first
// request, or idle between requests), so idle or slow clients cannot starve
// real ones. Only when every slot is serving a request does Accept wait.
// It serves the client's local fronts (API, SOCKS) and the metrics listeners.
//
// Locking: mu guards n, closed and idle; cond waits on mu for a free slot.
package conncap

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Listener is a net.Listener with a fair connection cap. Create with New;
// pass ConnState to the http.Server that serves its connections.
type Listener struct {
	net.Listener
	max int

	mu     sync.Mutex
	cond   *sync.Cond
	n      int                 // connections holding a slot
	idle   map[*Conn]time.Time // evictable connections, since when
	closed bool

	// Evicted counts connections closed to make room (for tests and metrics).
	evicted int
}

// New wraps ln so that at most max connections are open at once.
func New(ln net.Listener, max int) *Listener {
	l := &Listener{Listener: ln, max: max, idle: map[*Conn]time.Time{}}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// Conn is a connection accepted by a Listener. Closing it frees its slot.
type Conn struct {
	net.Conn
	l    *Listener
	once sync.Once
	gone bool // released; guarded by l.mu
}

// Close closes the connection and frees its slot.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

func (c *Conn) release() {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.gone = true
		delete(c.l.idle, c)
		c.l.n--
		c.l.mu.Unlock()
		c.l.cond.Broadcast()
	})
}

// Accept waits for a connection; when the cap is reached it evicts the
// oldest evictable connection, or waits for a slot if none is.
func (l *Listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	for l.n >= l.max && !l.closed {
		if v := l.oldestIdleLocked(); v != nil {
			delete(l.idle, v)
			l.evicted++
			l.mu.Unlock()
			_ = v.Close()
			l.mu.Lock()
			continue
		}
		l.cond.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		_ = nc.Close()
		return nil, net.ErrClosed
	}
	c := &Conn{Conn: nc, l: l}
	l.n++
	l.idle[c] = time.Now()
	l.mu.Unlock()
	return c, nil
}

func (l *Listener) oldestIdleLocked() *Conn {
	var v *Conn
	var since time.Time
	for c, t := range l.idle {
		if v == nil || t.Before(since) {
			v, since = c, t
		}
	}
	return v
}

// Close closes the listener and wakes an Accept waiting for a slot.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cond.Broadcast()
	return l.Listener.Close()
}

// SetBusy marks c as serving a request (not evictable) or not (evictable
// from now). c is a *Conn or wraps one (Unwrap() net.Conn).
func (l *Listener) SetBusy(c net.Conn, busy bool) {
	cc := unwrap(c)
	if cc == nil || cc.l != l {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if busy || cc.gone {
		delete(l.idle, cc)
		return
	}
	l.idle[cc] = time.Now()
}

// ConnState is an http.Server ConnState hook: a connection is busy while a
// request is active, evictable when new or idle, and freed when closed or
// hijacked.
func (l *Listener) ConnState(c net.Conn, s http.ConnState) {
	switch s {
	case http.StateActive:
		l.SetBusy(c, true)
	case http.StateIdle:
		l.SetBusy(c, false)
	case http.StateClosed, http.StateHijacked:
		if cc := unwrap(c); cc != nil && cc.l == l {
			cc.release()
		}
	}
}

// Evicted reports how many connections were closed to make room.
func (l *Listener) Evicted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.evicted
}

func unwrap(c net.Conn) *Conn {
	for range 4 {
		switch v := c.(type) {
		case *Conn:
			return v
		case interface{ Unwrap() net.Conn }:
			c = v.Unwrap()
		default:
			return nil
		}
	}
	return nil
}
