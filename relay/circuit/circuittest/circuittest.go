// Package circuittest provides fakes for testing circuits without a network:
// in-memory frame pipes standing in for relay/link, taps that record or alter
// the frames a link delivers, and a Network of in-process relays with real keys
// and real switches whose Dialer connects them by pipes. Only tests import it.
package circuittest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/circuit"
	"github.com/unfed/unfed/relay/keys"
)

// ErrClosed is returned by a closed pipe end.
var ErrClosed = errors.New("circuittest: pipe closed")

// End is one end of an in-memory pipe. It implements circuit.Link.
type End struct {
	in, out chan []byte
	closed  chan struct{}
	once    *sync.Once
}

// Pipe returns two connected ends; each buffers up to 256 frames.
func Pipe() (*End, *End) {
	ab, ba := make(chan []byte, 256), make(chan []byte, 256)
	closed, once := make(chan struct{}), &sync.Once{}
	return &End{in: ba, out: ab, closed: closed, once: once}, &End{in: ab, out: ba, closed: closed, once: once}
}

// ReadFrame returns the next frame.
func (e *End) ReadFrame() ([]byte, error) {
	select {
	case f := <-e.in:
		return f, nil
	case <-e.closed:
		return nil, io.EOF
	}
}

// WriteFrame sends a copy of p.
func (e *End) WriteFrame(p []byte) error {
	cp := append([]byte(nil), p...)
	select {
	case <-e.closed:
		return ErrClosed
	default:
	}
	select {
	case e.out <- cp:
		return nil
	case <-e.closed:
		return ErrClosed
	}
}

// WriteFrames sends a copy of each of ps in order (circuit.BatchLink, so
// that switches under test write their queued batches as relay/link's Conn
// lets them).
func (e *End) WriteFrames(ps [][]byte) error {
	for _, p := range ps {
		if err := e.WriteFrame(p); err != nil {
			return err
		}
	}
	return nil
}

// Close closes both ends.
func (e *End) Close() error {
	e.once.Do(func() { close(e.closed) })
	return nil
}

// Tap wraps a link: every frame read through it is recorded, and Alter (if
// set) may replace it by any number of frames (to drop, replay or reorder).
type Tap struct {
	circuit.Link
	mu      sync.Mutex
	frames  [][]byte
	pending [][]byte
	// Alter is called with each frame read and returns the frames to deliver
	// instead. Set it before the link is used.
	Alter func(f []byte) [][]byte
}

// NewTap wraps l.
func NewTap(l circuit.Link) *Tap { return &Tap{Link: l} }

// ReadFrame reads, records and possibly alters.
func (t *Tap) ReadFrame() ([]byte, error) {
	for {
		t.mu.Lock()
		if len(t.pending) > 0 {
			f := t.pending[0]
			t.pending = t.pending[1:]
			t.mu.Unlock()
			return f, nil
		}
		t.mu.Unlock()
		f, err := t.Link.ReadFrame()
		if err != nil {
			return nil, err
		}
		t.mu.Lock()
		t.frames = append(t.frames, append([]byte(nil), f...))
		if t.Alter != nil {
			t.pending = append(t.pending, t.Alter(f)...)
		} else {
			t.pending = append(t.pending, f)
		}
		t.mu.Unlock()
	}
}

// Frames returns copies of every frame read so far, before alteration.
func (t *Tap) Frames() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][]byte(nil), t.frames...)
}

// Relay is one in-process relay.
type Relay struct {
	Index    int
	Identity *keys.Identity
	Onion    *keys.OnionKey
	Switch   *circuit.Switch
	Registry *prometheus.Registry
}

// Network is a set of relays whose switches dial each other over pipes.
type Network struct {
	Relays []*Relay
	// WrapRelayLink, if set, wraps each end of a new relay-to-relay pipe:
	// l is what relay `reader` reads from, and `peer` is at the other end.
	// Set it before building circuits.
	WrapRelayLink func(reader, peer int, l circuit.Link) circuit.Link

	mu    sync.Mutex
	links map[[2]int]circuit.Link
	dials int
}

// NewNetwork starts n relays. configure, if not nil, adjusts each relay's
// config (limits, handler) before its switch is made. Everything is closed when
// the test ends.
func NewNetwork(t testing.TB, n int, configure func(i int, c *circuit.Config)) *Network {
	t.Helper()
	nw := &Network{links: map[[2]int]circuit.Link{}}
	for i := range n {
		id, err := keys.NewIdentity(nil)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := keys.NewOnionKey(nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		r := &Relay{Index: i, Identity: id, Onion: ok, Registry: prometheus.NewRegistry()}
		cfg := circuit.Config{
			Identity:   id.Public,
			OnionKeys:  func() (*keys.OnionKey, *keys.OnionKey) { return r.Onion, nil },
			Dialer:     &dialer{nw: nw, from: i},
			Registerer: r.Registry,
		}
		if configure != nil {
			configure(i, &cfg)
		}
		sw, err := circuit.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.Switch = sw
		nw.Relays = append(nw.Relays, r)
	}
	t.Cleanup(func() {
		for _, r := range nw.Relays {
			r.Switch.Close()
		}
	})
	return nw
}

// ClientLink connects a client to relay i and returns the client's end.
// wrap, if not nil, wraps the relay's end (what the relay reads).
func (nw *Network) ClientLink(i int, wrap func(circuit.Link) circuit.Link) circuit.Link {
	a, b := Pipe()
	var rl circuit.Link = b
	if wrap != nil {
		rl = wrap(b)
	}
	nw.Relays[i].Switch.Accept(rl, true)
	return a
}

// Dials reports how many relay-to-relay links were opened.
func (nw *Network) Dials() int {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return nw.dials
}

type dialer struct {
	nw   *Network
	from int
}

func (d *dialer) Dial(ctx context.Context, fp keys.Fingerprint, specs []cell.LinkSpec) (circuit.Link, error) {
	nw := d.nw
	to := -1
	for _, r := range nw.Relays {
		if r.Identity.Fingerprint() == fp {
			to = r.Index
		}
	}
	if to < 0 {
		return nil, fmt.Errorf("circuittest: no relay %s", fp)
	}
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if l, ok := nw.links[[2]int{d.from, to}]; ok {
		return l, nil
	}
	a, b := Pipe()
	var rl, dl circuit.Link = b, a
	if nw.WrapRelayLink != nil {
		rl = nw.WrapRelayLink(to, d.from, b)
		dl = nw.WrapRelayLink(d.from, to, a)
	}
	if err := nw.Relays[to].Switch.Accept(rl, false); err != nil {
		return nil, err
	}
	nw.links[[2]int{d.from, to}] = dl
	nw.dials++
	return dl, nil
}

// Counter returns the value of a counter or gauge in reg with the given name
// and, if label is not empty, reason label value; 0 if absent.
func Counter(reg *prometheus.Registry, name, label string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !hasLabel(m, label) {
				continue
			}
			if m.Counter != nil {
				total += m.Counter.GetValue()
			}
			if m.Gauge != nil {
				total += m.Gauge.GetValue()
			}
		}
	}
	return total
}

func hasLabel(m *dto.Metric, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == v {
			return true
		}
	}
	return false
}
