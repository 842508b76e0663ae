// Package origin is the client side of UNFED circuits (spec/02-circuit.md): it
// builds a circuit hop by hop over a first link (CREATE, then EXTEND through
// the last hop), wraps each relay message in one onion layer per hop up to its
// target, peels backward cells until the layer of the hop that sent them,
// fragments and reassembles messages up to cell.MaxMessage, keeps the credit
// windows, and tears the circuit down.
//
// Hops are numbered from 0: hop 0 is the guard, the hop the first link reaches.
//
// Data path. A Mux owns one link: one reader goroutine decodes cells and hands
// them to their Circuit; writes happen on the caller's goroutine under
// Mux.wmu. Per circuit, sendMu is held from the first layer seal to the link
// write (or to the cell joining the circuit's held cells, written in order
// by one flush: Send holds a message's fragments, Hold a whole flight), so
// the wire order matches every hop's nonce counter; mu guards the
// hop list, credits, the receive queue and the pending handshake.
package origin

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/keys"
)

// HopInfo is what the client knows of one hop, from the consensus.
type HopInfo struct {
	// Fingerprint names the relay; if zero it is derived from IdentityKey, and
	// if set it must match it.
	Fingerprint keys.Fingerprint
	IdentityKey ed25519.PublicKey
	OnionKey    [32]byte
	// XWingKey is the relay's packed X-Wing key; required for Hybrid.
	XWingKey []byte
	// LinkSpecs say how the previous hop reaches this one; unused for hop 0.
	LinkSpecs []cell.LinkSpec
}

// Options tune a circuit. The zero value is ready to use.
type Options struct {
	// Hybrid selects the X25519+X-Wing handshake for every hop.
	Hybrid bool
	// Rand is the randomness for handshakes; nil means crypto/rand.
	Rand io.Reader
	// Logger receives one line per notable event; nil discards.
	Logger *slog.Logger
}

// DestroyedError says a circuit is gone and why.
type DestroyedError struct {
	Reason cell.Reason
	// Remote is true when a relay destroyed the circuit, false when we did.
	Remote bool
	// Hop, when Remote, is the hop that tore the circuit down and said so
	// inside the onion (TRUNCATED, 02-circuit §2.4), 0 for the first; -1 when
	// only a DESTROY arrived, whose reason is then the guard's.
	Hop int
}

func (e *DestroyedError) Error() string {
	who := "locally"
	switch {
	case e.Remote && e.Hop >= 0:
		who = fmt.Sprintf("by hop %d", e.Hop)
	case e.Remote:
		who = "by a relay"
	}
	return fmt.Sprintf("origin: circuit destroyed %s: %s", who, e.Reason)
}

// ExtendError says a hop could not extend the circuit.
type ExtendError struct {
	Hop    int
	Reason cell.Reason
}

func (e *ExtendError) Error() string {
	return fmt.Sprintf("origin: extending from hop %d failed: %s", e.Hop, e.Reason)
}

// Mux carries the circuits of one client link.
type Mux struct {
	l   circuit.Link
	log *slog.Logger

	wmu sync.Mutex

	mu     sync.Mutex
	circs  map[uint32]*Circuit
	closed bool
	done   chan struct{}
}

// NewMux starts serving l. Close the Mux to close l.
func NewMux(l circuit.Link, log *slog.Logger) *Mux {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Mux{l: l, log: log, circs: map[uint32]*Circuit{}, done: make(chan struct{})}
	go m.readLoop()
	return m
}

// Build builds a circuit through hops over a new Mux on l. Destroying the
// circuit closes l.
func Build(ctx context.Context, l circuit.Link, hops []HopInfo, opts Options) (*Circuit, error) {
	m := NewMux(l, opts.Logger)
	c, err := m.Build(ctx, hops, opts)
	if err != nil {
		m.Close()
		return nil, err
	}
	c.ownsMux = true
	return c, nil
}

// Close destroys every circuit and closes the link.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	circs := make([]*Circuit, 0, len(m.circs))
	for _, c := range m.circs {
		circs = append(circs, c)
	}
	m.mu.Unlock()
	for _, c := range circs {
		c.fail(&DestroyedError{Reason: cell.ReasonLinkClosed}, false)
	}
	return m.l.Close()
}

// Done is closed when the link has failed or been closed.
func (m *Mux) Done() <-chan struct{} { return m.done }

// Closed reports whether the Mux was closed or its link failed: it takes no
// new circuits. Done may close a moment later.
func (m *Mux) Closed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

func (m *Mux) write(f []byte) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	return m.l.WriteFrame(f)
}

// writeFrames writes fs in order: in one write to the transport when the
// link can (circuit.BatchLink), so the guard reads a flight of cells in one
// wake-up; else one write each.
func (m *Mux) writeFrames(fs [][]byte) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if bl, ok := m.l.(circuit.BatchLink); ok && len(fs) > 1 {
		return bl.WriteFrames(fs)
	}
	for _, f := range fs {
		if err := m.l.WriteFrame(f); err != nil {
			return err
		}
	}
	return nil
}

func (m *Mux) register(c *Circuit) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return circuit.ErrClosed
	}
	for range 64 {
		id := rand.Uint32() | 0x80000000 // the client opened the link (spec §2.3)
		if _, used := m.circs[id]; !used {
			c.id = id
			m.circs[id] = c
			return nil
		}
	}
	return errors.New("origin: no free circuit id")
}

func (m *Mux) forget(c *Circuit) {
	m.mu.Lock()
	if m.circs[c.id] == c {
		delete(m.circs, c.id)
	}
	m.mu.Unlock()
}

func (m *Mux) readLoop() {
	defer close(m.done)
	// A link that reads into buffers of ours (relay/link's Conn) reads
	// each cell into a frame from the free list, which goes back once the
	// cell is handled: nothing below keeps a cell's bytes (CREATED's
	// payload and each message are copied), and a client that made a new
	// frame per cell took new pages for every answer.
	read, recycle := m.l.ReadFrame, false
	if al, ok := m.l.(circuit.AllocLink); ok {
		read, recycle = func() ([]byte, error) { return al.ReadFrameAlloc(allocFrame) }, true
	}
	for {
		f, err := read()
		if err != nil {
			m.Close()
			return
		}
		m.handle(f)
		if recycle {
			cell.FreeFrame(f)
		}
	}
}

// allocFrame gives an AllocLink a frame of n bytes from the free list when
// n is a cell class; nil (a new one) for any other size.
func allocFrame(n int) []byte {
	for _, c := range cell.Classes {
		if n == c {
			return cell.NewFrame(n)
		}
	}
	return nil
}

// handle dispatches one frame read from the link; it keeps none of f.
func (m *Mux) handle(f []byte) {
	cl, err := cell.Decode(f)
	if err != nil {
		return
	}
	m.mu.Lock()
	c := m.circs[cl.CircID]
	m.mu.Unlock()
	if c == nil {
		return
	}
	switch cl.Cmd {
	case cell.CmdCreated:
		c.control(ctlMsg{kind: cell.KindExtended, data: append([]byte(nil), cl.Payload...)}, -1)
	case cell.CmdDestroy:
		r := cell.ReasonNone
		if len(cl.Payload) > 0 {
			r = cell.Reason(cl.Payload[0])
		}
		c.fail(c.destroyedBy(r), false)
	case cell.CmdRelayBackward:
		c.backward(cl.Payload, len(f))
	}
}
