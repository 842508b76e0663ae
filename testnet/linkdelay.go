package testnet

// Wide-area emulation in user space (the kernel here has no netem): with a
// link delay, every relay publishes the address of a delaying forwarder the
// harness runs in front of its TCP listener (debug.advertise_tcp), so every
// link to a relay — client → guard, relay → relay, authority probes — passes
// exactly one forwarder, which delays both directions. Per direction:
//
//	read chunk → due = max(previous due, now + delay + jitter·U[0,1),
//	             transmit end at rate) → queue (bounded) → sleep until due → write
//
// Chunks keep their order (a later chunk is never due before an earlier
// one), as on a TCP path.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// LinkShape is what every emulated link does to the bytes it carries.
type LinkShape struct {
	// Delay is added to every byte, each way.
	Delay time.Duration
	// Jitter adds up to this much more at random (order is kept).
	Jitter time.Duration
	// Rate limits each direction to this many bytes per second (0: none).
	Rate int64
}

// Active reports whether the shape changes anything.
func (s LinkShape) Active() bool { return s.Delay > 0 || s.Jitter > 0 || s.Rate > 0 }

// linkChunk bounds one read; linkQueue bounds the chunks in flight per
// direction (4 MiB), so a fast sender is slowed by the forwarder, not
// buffered without limit.
const (
	linkChunk = 32 << 10
	linkQueue = 128
)

// Forwarder accepts connections on its own address and relays each to the
// target, shaped.
type Forwarder struct {
	shape  LinkShape
	ln     net.Listener
	target atomic.Pointer[string]
	ready  chan struct{} // closed when the target is set
	once   sync.Once
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	nconn  int // connections accepted, numbering them for the record

	// rec, when set (Record), notes every chunk passed on, labelled name.
	rec  *LinkRecord
	name string
}

// LinkChunk is one chunk a forwarder passed on: which link, which way, how
// many bytes, when it was read and when written.
type LinkChunk struct {
	// Relay names the relay behind the forwarder; Conn numbers the
	// connection among those the forwarder accepted.
	Relay string
	Conn  int
	// ToRelay is true for bytes travelling to the relay (from its dialer).
	ToRelay     bool
	Bytes       int
	Read, Wrote time.Time
}

// LinkRecord keeps the most recent chunks of every forwarder of a network
// (at most maxLinkRecord), for tests and benchmarks that look at what
// crossed the links and when.
type LinkRecord struct {
	mu     sync.Mutex
	chunks []LinkChunk
}

// maxLinkRecord bounds a LinkRecord; the older half is dropped when full.
const maxLinkRecord = 1 << 16

func (r *LinkRecord) add(c LinkChunk) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.chunks) >= maxLinkRecord {
		r.chunks = r.chunks[:copy(r.chunks, r.chunks[maxLinkRecord/2:])]
	}
	r.chunks = append(r.chunks, c)
}

// Between returns the recorded chunks read in [from, to), in the order
// they were written.
func (r *LinkRecord) Between(from, to time.Time) []LinkChunk {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []LinkChunk
	for _, c := range r.chunks {
		if !c.Read.Before(from) && c.Read.Before(to) {
			out = append(out, c)
		}
	}
	return out
}

// Record makes the forwarder note every chunk it passes on in rec, labelled
// name. Call it before the first connection.
func (f *Forwarder) Record(rec *LinkRecord, name string) { f.rec, f.name = rec, name }

// NewForwarder listens on a free port of 127.0.0.1; the target is set later
// (SetTarget), when the relay behind it has announced its address.
func NewForwarder(shape LinkShape) (*Forwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testnet: forwarder: %w", err)
	}
	f := &Forwarder{shape: shape, ln: ln, ready: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	return f, nil
}

// Addr is the address peers dial.
func (f *Forwarder) Addr() string { return f.ln.Addr().String() }

// SetTarget sets the address connections are forwarded to.
func (f *Forwarder) SetTarget(addr string) {
	f.target.Store(&addr)
	f.once.Do(func() { close(f.ready) })
}

// Close stops accepting, closes every forwarded connection and waits.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	err := f.ln.Close()
	f.wg.Wait()
	return err
}

func (f *Forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *Forwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			continue
		}
		f.mu.Lock()
		f.nconn++
		id := f.nconn
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.untrack(c)
			f.forward(c, id)
		}()
	}
}

func (f *Forwarder) forward(c net.Conn, id int) {
	select {
	case <-f.ready:
	case <-time.After(30 * time.Second):
		return
	}
	up, err := net.DialTimeout("tcp", *f.target.Load(), 10*time.Second)
	if err != nil {
		return
	}
	if !f.track(up) {
		return
	}
	defer f.untrack(up)
	var wg sync.WaitGroup
	wg.Add(2)
	note := func(toRelay bool) func(n int, read, wrote time.Time) {
		if f.rec == nil {
			return nil
		}
		return func(n int, read, wrote time.Time) {
			f.rec.add(LinkChunk{Relay: f.name, Conn: id, ToRelay: toRelay, Bytes: n, Read: read, Wrote: wrote})
		}
	}
	go func() { defer wg.Done(); f.shape.pump(up, newRxConn(c), note(true)); up.Close(); c.Close() }()
	go func() { defer wg.Done(); f.shape.pump(c, newRxConn(up), note(false)); up.Close(); c.Close() }()
	wg.Wait()
}

type timedChunk struct {
	read, due time.Time
	b         []byte
}

// pump copies src to dst, shaped, until either fails; note, when set, is
// told of every chunk written. A chunk is due its delay after it was read,
// or, from a stampedReader, after the kernel received it.
func (s LinkShape) pump(dst io.Writer, src io.Reader, note func(n int, read, wrote time.Time)) {
	q := make(chan timedChunk, linkQueue)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer close(q)
		var lastDue, txEnd time.Time
		for {
			buf := make([]byte, linkChunk)
			var n int
			var err error
			var now time.Time
			if sr, ok := src.(stampedReader); ok {
				n, now, err = sr.readStamped(buf)
			} else {
				n, err = src.Read(buf)
				now = time.Now()
			}
			if n > 0 {
				sent := now
				if s.Rate > 0 {
					txEnd = maxTime(txEnd, now).Add(time.Duration(int64(n) * int64(time.Second) / s.Rate))
					sent = txEnd
				}
				due := sent.Add(s.Delay)
				if s.Jitter > 0 {
					due = due.Add(time.Duration(rand.Int64N(int64(s.Jitter))))
				}
				due = maxTime(due, lastDue)
				lastDue = due
				select {
				case q <- timedChunk{now, due, buf[:n]}:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	sl := newSleeper()
	defer sl.close()
	for ch := range q {
		sl.until(ch.due)
		if _, err := dst.Write(ch.b); err != nil {
			cancel()
			for range q { // let the reader end
			}
			return
		}
		if note != nil {
			note(len(ch.b), ch.read, time.Now())
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// aimForwarder points a relay's forwarder (Generate made it, and the
// relay's config advertises it) at the TCP listener the relay announced.
func aimForwarder(node *Node) error {
	if node.fwd == nil {
		return nil
	}
	addr := node.Listeners["or"]
	if addr == "" {
		return errors.New("testnet: relay " + node.Name + " announced no tcp listener")
	}
	node.fwd.SetTarget(addr)
	return nil
}

// closeForwarders stops every forwarder of n.
func (n *Network) closeForwarders() {
	for _, node := range n.Nodes {
		if node.fwd != nil {
			node.fwd.Close()
		}
	}
}
