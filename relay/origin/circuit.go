package origin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/internal/broadcast"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/onion"
)

// Circuit is a client circuit. Its methods are safe for concurrent use.
type Circuit struct {
	m       *Mux
	id      uint32
	opts    Options
	ownsMux bool
	done    chan struct{}

	sendMu sync.Mutex // held from the first seal to the link write
	// Guarded by sendMu: while holds > 0 sealed cells wait in held (at
	// most maxHeld bytes) for one write (send.go).
	holds     int
	held      [][]byte
	heldBytes int
	// receivers counts the Recvs waiting: while one does, cells are
	// written, not held.
	receivers atomic.Int32

	mu      sync.Mutex
	hops    []*hop
	err     error
	ctl     chan ctlMsg // the pending handshake's answer, if any
	ctlFrom int         // which hop may answer it (-1: the guard's CREATED)
	recvq   []recvItem
	recvSig broadcast.Signal
	// truncated is what a hop said inside the onion when it tore the
	// circuit down (TRUNCATED); the DESTROY that follows ends the circuit.
	truncated *DestroyedError
}

type hop struct {
	fwd, bwd *onion.Layer
	msgMu    sync.Mutex // one message at a time toward this hop

	// Guarded by Circuit.mu.
	credit   int
	consumed int
	unacked  int
	sig      broadcast.Signal

	// Owned by the reader.
	reasm     cell.Reassembler
	reasmCost int
}

type ctlMsg struct {
	kind cell.Kind
	data []byte
}

type recvItem struct {
	hop  int
	msg  []byte
	cost int
	pad  bool // a PADDING message: consumed, never returned by Recv
}

// Build builds a circuit through hops (at least one) on this Mux.
func (m *Mux) Build(ctx context.Context, hops []HopInfo, opts Options) (*Circuit, error) {
	if len(hops) == 0 || len(hops) > maxHops {
		return nil, fmt.Errorf("origin: %d hops, want 1..%d", len(hops), maxHops)
	}
	c := &Circuit{m: m, opts: opts, done: make(chan struct{})}
	if err := m.register(c); err != nil {
		return nil, err
	}
	for _, h := range hops {
		if err := c.Extend(ctx, h); err != nil {
			c.Destroy()
			return nil, err
		}
	}
	return c, nil
}

// maxHops mirrors circuit.MaxHops.
const maxHops = 16

// Len returns the number of hops built.
func (c *Circuit) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.hops)
}

// Done is closed when the circuit is destroyed; Err then says why.
func (c *Circuit) Done() <-chan struct{} { return c.done }

// Err returns why the circuit was destroyed, or nil.
func (c *Circuit) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Extend adds one hop: CREATE on the link for the first, EXTEND through the
// current last hop after that.
func (c *Circuit) Extend(ctx context.Context, h HopInfo) error {
	if fp := keys.FingerprintOf(h.IdentityKey); h.Fingerprint.IsZero() {
		h.Fingerprint = fp
	} else if fp != h.Fingerprint || len(h.IdentityKey) == 0 {
		return errors.New("origin: fingerprint does not match the identity key")
	}
	typ := onion.Ntor
	if c.opts.Hybrid {
		typ = onion.NtorXWing
	}
	hs, data, err := onion.NewClient(typ, onion.RelayInfo{Identity: h.IdentityKey, OnionKey: h.OnionKey, XWingKey: h.XWingKey}, c.opts.Rand)
	if err != nil {
		return err
	}
	ch := make(chan ctlMsg, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	if c.ctl != nil {
		c.mu.Unlock()
		return errors.New("origin: an extension is already in progress")
	}
	n := len(c.hops)
	if n >= maxHops {
		c.mu.Unlock()
		return errors.New("origin: circuit at its maximum length")
	}
	c.ctl, c.ctlFrom = ch, n-1
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.ctl = nil
		c.mu.Unlock()
	}()

	body, err := cell.AppendHandshake(nil, cell.Handshake{Type: uint16(typ), Data: data})
	if err != nil {
		return err
	}
	if n == 0 {
		f, err := cell.Encode(cell.Cell{CircID: c.id, Cmd: cell.CmdCreate, Payload: body})
		if err != nil {
			return err
		}
		if err := c.m.write(f); err != nil {
			return fmt.Errorf("origin: sending CREATE: %w", err)
		}
	} else {
		ext, err := cell.AppendExtend(nil, cell.Extend{Fingerprint: h.Fingerprint, Specs: h.LinkSpecs, Handshake: cell.Handshake{Type: uint16(typ), Data: data}})
		if err != nil {
			return err
		}
		if err := c.sendFragment(n-1, cell.KindExtend, false, ext); err != nil {
			return err
		}
	}
	var reply ctlMsg
	select {
	case reply = <-ch:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.Err()
	}
	if reply.kind == cell.KindExtendFailed {
		r := cell.ReasonNone
		if len(reply.data) > 0 {
			r = cell.Reason(reply.data[0])
		}
		return &ExtendError{Hop: n - 1, Reason: r}
	}
	got, _, err := cell.ParseHandshake(reply.data)
	if err != nil || got.Type != uint16(typ) {
		c.fail(&DestroyedError{Reason: cell.ReasonHandshake}, true)
		return fmt.Errorf("origin: hop %d: bad CREATED", n)
	}
	k, err := hs.Finish(got.Data)
	if err != nil {
		c.fail(&DestroyedError{Reason: cell.ReasonHandshake}, true)
		return fmt.Errorf("origin: hop %d: %w", n, err)
	}
	p, err := onion.NewPair(k)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.hops = append(c.hops, &hop{fwd: p.Forward, bwd: p.Backward, credit: cell.Window})
	c.mu.Unlock()
	return nil
}

// control hands a handshake answer to the waiting Extend; from is the hop that
// sent it (-1 for CREATED on the link). Anything unexpected destroys the
// circuit.
func (c *Circuit) control(m ctlMsg, from int) {
	c.mu.Lock()
	ch, ok := c.ctl, c.ctl != nil && c.ctlFrom == from
	if ok {
		c.ctl = nil
	}
	c.mu.Unlock()
	if !ok {
		c.fail(&DestroyedError{Reason: cell.ReasonProtocol}, true)
		return
	}
	ch <- m
}

// Destroy tears the circuit down. It is safe to call more than once.
func (c *Circuit) Destroy() {
	c.fail(&DestroyedError{Reason: cell.ReasonNone}, true)
}

// fail ends the circuit once with err, telling the guard if tell is set.
func (c *Circuit) fail(err error, tell bool) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	close(c.done)
	c.mu.Unlock()
	c.recvSig.Notify()
	if tell {
		r := cell.ReasonNone
		var de *DestroyedError
		if errors.As(err, &de) {
			r = de.Reason
		}
		c.m.write(cell.Destroy(c.id, r))
	}
	c.m.forget(c)
	if c.ownsMux {
		c.m.Close()
	}
}
