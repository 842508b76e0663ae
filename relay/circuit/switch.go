// Package circuit is the relay side of UNFED circuits (spec/02-circuit.md): the
// circuit switch. It owns, per link, the table of circuits crossing it; it
// answers CREATE, peels one forward onion layer and adds one backward layer per
// relay cell, forwards to the next link, handles EXTEND by opening or reusing a
// link through a Dialer and sending CREATE, carries EDGE cells between hops,
// tears circuits down with DESTROY, and enforces flow control and limits.
//
// The compute protocol plugs in as a Handler: it receives the relay messages
// the client addresses to this hop and the edge messages of neighbouring hops,
// and answers through the Hop it is given. A guard needs no Handler.
//
// Data path. Each link has one reader goroutine (readLoop) that decodes cells
// and dispatches them, and one writer goroutine (writeLoop) that drains the
// link's queue; dispatch never blocks on another link. Per circuit: the
// forward layer is only used by the reader of the previous link; the backward
// layer is used under circ.bwdMu, held from seal to enqueue so the wire order
// matches the nonce counter; circ.mu guards the next link, the extend state,
// the credit window and the inbox. Lock order: circ.mu, then link.mu, then
// Switch.mu; none is held while calling the Handler.
//
// Nothing here logs cell contents, keys or addresses.
package circuit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/keys"
)

// Link is a framed, authenticated, ordered connection to a neighbour (relay/link
// implements it). ReadFrame is called by one goroutine and returns a slice the
// caller owns; WriteFrame is called by one goroutine and must not keep p.
type Link interface {
	ReadFrame() ([]byte, error)
	WriteFrame(p []byte) error
	Close() error
}

// BatchLink is a Link that can send several frames in one write to its
// transport (relay/link's Conn does). The switch uses it for the frames
// queued on a link while it was writing, so a batch of cells costs one
// system call and one wake-up of the peer, not one per cell.
type BatchLink interface {
	Link
	WriteFrames(ps [][]byte) error
}

// AllocLink is a Link that reads a frame into a slice of the caller's
// (relay/link's Conn does): the switch gives it large frames from the free
// list it recycles its written frames into (cell.NewLarge), so that a cell
// lands in memory still in the cache rather than in a new allocation.
// alloc(n) returns a slice of length n, which the Link returns filled, or
// nil for a new one.
type AllocLink interface {
	Link
	ReadFrameAlloc(alloc func(n int) []byte) ([]byte, error)
}

// Dialer opens a link to a relay, or returns an existing one. The switch
// recognises a link it already serves by identity (==), so a Dialer that reuses
// links must return the same value it was given to Accept or returned before.
type Dialer interface {
	Dial(ctx context.Context, fp keys.Fingerprint, specs []cell.LinkSpec) (Link, error)
}

// Handler is the local service of a hop (the compute protocol). Handle is
// called with the messages of one circuit one at a time, in arrival order, on a
// goroutine of its own; it may block (that is flow control). Closed is called
// once, after the last Handle, when the circuit is gone.
type Handler interface {
	Handle(h *Hop, m Message)
	Closed(h *Hop)
}

// Message is what a Handler receives.
type Message struct {
	// Edge is false for a relay message from the client, true for an edge
	// message from another hop.
	Edge bool
	// Dir, for an edge message: Forward came from an earlier hop, Backward
	// from the next hop.
	Dir cell.Direction
	// Distance, for an edge message, is how many hops away the sender is.
	Distance int
	// Data is the message; the handler owns it.
	Data []byte
}

// Config configures a Switch. The zero value of each field means its default.
type Config struct {
	// Identity is the relay's Ed25519 identity public key; required.
	Identity ed25519.PublicKey
	// OnionKeys returns the current onion key and the previous one while it is
	// in its grace period (keys.Store.OnionKeys); required.
	OnionKeys func() (current, previous *keys.OnionKey)
	// Dialer opens links for EXTEND; nil refuses every EXTEND.
	Dialer Dialer
	// Handler is the local service; nil drops every message addressed here.
	Handler Handler
	// LinkHandler takes the GOSSIP cells of relay links (spec §2.5); nil
	// drops them.
	LinkHandler LinkHandler
	// Logger receives one line per notable event; nil discards.
	Logger *slog.Logger
	// Registerer receives the metrics (namespace "unfed"); nil registers none.
	Registerer prometheus.Registerer
	// MaxCircuits is the limit on circuits through this relay; 0 means 8192.
	MaxCircuits int
	// MaxCircuitsPerLink is the limit on circuits per link; 0 means 1024.
	MaxCircuitsPerLink int
	// MaxQueueBytes bounds the bytes one circuit may have queued on one link;
	// a peer that makes us queue more gets the circuit destroyed. 0 means
	// 4 * cell.Window * MaxHops.
	MaxQueueBytes int
	// IdleTimeout destroys a circuit that carried no cell for this long; 0
	// means 10 minutes.
	IdleTimeout time.Duration
	// ExtendTimeout bounds dialing and waiting for CREATED; 0 means 30 s.
	ExtendTimeout time.Duration
	// Rand is the randomness for handshakes; nil means crypto/rand.
	Rand io.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// MaxHops is the deepest position a hop may have in a circuit.
const MaxHops = 16

func (c *Config) fill() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxCircuits == 0 {
		c.MaxCircuits = 8192
	}
	if c.MaxCircuitsPerLink == 0 {
		c.MaxCircuitsPerLink = 1024
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = 4 * cell.Window * MaxHops
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.ExtendTimeout == 0 {
		c.ExtendTimeout = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Switch is a relay's circuit switch.
type Switch struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	links  map[Link]*link
	all    map[*circ]struct{}
	nextNo uint64
	closed bool
}

// ErrClosed is returned by operations on a closed switch or circuit.
var ErrClosed = errors.New("circuit: closed")

// New returns a switch. It starts nothing until links are accepted.
func New(cfg Config) (*Switch, error) {
	if len(cfg.Identity) != ed25519.PublicKeySize || cfg.OnionKeys == nil {
		return nil, errors.New("circuit: config needs Identity and OnionKeys")
	}
	cfg.fill()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Switch{cfg: cfg, log: cfg.Logger, m: m, ctx: ctx, cancel: cancel,
		links: map[Link]*link{}, all: map[*circ]struct{}{}}, nil
}

// Accept serves a link a neighbour opened to us. fromClient marks a link from
// a client (one that authenticated only us): edge cells never travel on it.
// Accept returns at once; the link is served until it fails or the switch
// closes.
func (s *Switch) Accept(l Link, fromClient bool) error {
	_, err := s.attach(l, false, fromClient)
	return err
}

// attach serves l, or returns the link already serving it.
func (s *Switch) attach(l Link, initiator, fromClient bool) (*link, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		l.Close()
		return nil, ErrClosed
	}
	if lk, ok := s.links[l]; ok {
		return lk, nil
	}
	lk := newLink(s, l, initiator, fromClient)
	s.links[l] = lk
	s.wg.Add(2)
	go lk.readLoop()
	go lk.writeLoop()
	return lk, nil
}

// Circuits returns how many circuits cross this relay.
func (s *Switch) Circuits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

// Run sweeps idle circuits every minute (or every IdleTimeout/4 if shorter)
// until ctx ends.
func (s *Switch) Run(ctx context.Context) {
	every := max(min(time.Minute, s.cfg.IdleTimeout/4), time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.SweepIdle()
		}
	}
}

// SweepIdle destroys every circuit idle for longer than the idle timeout and
// reports how many.
func (s *Switch) SweepIdle() int {
	cut := s.cfg.Now().Add(-s.cfg.IdleTimeout).UnixNano()
	var idle []*circ
	s.mu.Lock()
	for c := range s.all {
		if c.lastActive.Load() < cut {
			idle = append(idle, c)
		}
	}
	s.mu.Unlock()
	for _, c := range idle {
		c.destroy(cell.ReasonTimeout, nil)
	}
	return len(idle)
}

// Close closes every link, which destroys every circuit, and waits for the
// link goroutines.
func (s *Switch) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	links := make([]*link, 0, len(s.links))
	for _, l := range s.links {
		links = append(links, l)
	}
	s.mu.Unlock()
	s.cancel()
	for _, l := range links {
		l.close()
	}
	s.wg.Wait()
	return nil
}

func (s *Switch) forgetLink(l *link) {
	s.mu.Lock()
	delete(s.links, l.l)
	s.mu.Unlock()
}

// admit reserves a place for a new circuit under the relay-wide limit.
func (s *Switch) admit(c *circ) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.all) >= s.cfg.MaxCircuits {
		return false
	}
	s.nextNo++
	c.no = s.nextNo
	s.all[c] = struct{}{}
	s.m.circuits.Set(float64(len(s.all)))
	return true
}

func (s *Switch) forget(c *circ) {
	s.mu.Lock()
	delete(s.all, c)
	s.m.circuits.Set(float64(len(s.all)))
	s.mu.Unlock()
}
