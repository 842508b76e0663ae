package relay

// The measured exchange authorities time to weight relays
// (spec/04-directory.md §6.3). On a link of its own to a relay the probe
// found reachable, the prober writes MeasureCells large link-level PADDING
// cells and then a CREATE for a fresh one-hop circuit, and stops the clock
// when the CREATED arrives and verifies. The relay's link is an ordered
// stream, so it cannot read the CREATE before it has received every
// PADDING byte written ahead of it, and it cannot answer without its onion
// key and the CREATE's fresh ephemeral key: the answer proves the bytes
// reached the relay and that it did the handshake work. Nothing reaches
// the relay's compute service. The circuit is destroyed at once.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/link"
	"github.com/unfed/unfed/relay/onion"
)

// Measurement size (spec/04-directory.md §6.3).
const (
	// MeasureCells is how many large PADDING cells one measurement sends
	// ahead of its CREATE.
	MeasureCells = 8
	// MeasureBytes is the cell bytes of those PADDING cells: the Bytes of
	// every successful directory.Measurement.
	MeasureBytes = MeasureCells * cell.ClassLarge
)

var _ directory.Measurer = (*LinkProber)(nil)

// Measure implements directory.Measurer: the measured exchange on a new
// link to the relay, within ctx. Sent and Received are set even when it
// fails.
func (p *LinkProber) Measure(ctx context.Context, d *directory.Descriptor) (directory.Measurement, error) {
	var n byteCount
	m, err := p.measure(ctx, d, &n)
	m.Sent, m.Received = n.sent.Load(), n.received.Load()
	if err != nil && p.Logger != nil {
		p.Logger.Debug("relay not measured", "fingerprint", d.Fingerprint().String(), "err", err)
	}
	return m, err
}

func (p *LinkProber) measure(ctx context.Context, d *directory.Descriptor, n *byteCount) (directory.Measurement, error) {
	lc, _, err := p.open(ctx, d, n)
	if err != nil {
		return directory.Measurement{}, fmt.Errorf("%w: %w", ErrMeasure, err)
	}
	defer lc.Close()
	elapsed, err := measureExchange(ctx, lc, d)
	if err != nil {
		return directory.Measurement{}, err
	}
	return directory.Measurement{Bytes: MeasureBytes, Elapsed: elapsed}, nil
}

// ErrMeasure is wrapped by every failed measurement.
var ErrMeasure = errors.New("relay: measurement failed")

// measureExchange runs the timed exchange on lc and returns the time from
// the first PADDING cell written to the verified CREATED.
func measureExchange(ctx context.Context, lc *link.Conn, d *directory.Descriptor) (time.Duration, error) {
	stop := context.AfterFunc(ctx, func() { lc.Close() })
	defer stop()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	id := binary.BigEndian.Uint32(b[:]) | 1<<31 // the link initiator's half (spec/02 §2.3)
	hs, data, err := onion.NewClient(onion.Ntor, onion.RelayInfo{Identity: d.Identity, OnionKey: d.Onion.X25519, XWingKey: d.Onion.XWing}, nil)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrMeasure, err)
	}
	body, err := cell.AppendHandshake(nil, cell.Handshake{Type: uint16(onion.Ntor), Data: data})
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrMeasure, err)
	}
	create, err := cell.Encode(cell.Cell{CircID: id, Cmd: cell.CmdCreate, Payload: body})
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrMeasure, err)
	}
	padding := make([]byte, cell.ClassLarge)
	cell.PutHeader(padding, 0, cell.CmdPadding, 0)

	start := time.Now()
	for range MeasureCells {
		if err := lc.WriteFrame(padding); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrMeasure, err)
		}
	}
	if err := lc.WriteFrame(create); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrMeasure, err)
	}
	var c cell.Cell
	for {
		f, err := lc.ReadFrame()
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrMeasure, errors.Join(err, ctx.Err()))
		}
		if c, err = cell.Decode(f); err != nil || c.CircID != id {
			continue // nothing else is in flight on this link; a relay may pad
		}
		break
	}
	elapsed := time.Since(start)
	if c.Cmd != cell.CmdCreated {
		return 0, fmt.Errorf("%w: CREATE answered by %v", ErrMeasure, c.Cmd)
	}
	got, _, err := cell.ParseHandshake(c.Payload)
	if err == nil && got.Type != uint16(onion.Ntor) {
		err = errors.New("CREATED of another handshake type")
	}
	if err == nil {
		_, err = hs.Finish(got.Data)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrMeasure, err)
	}
	// Best effort: closing the link destroys the circuit anyway.
	_ = lc.WriteFrame(cell.Destroy(id, cell.ReasonNone))
	return elapsed, nil
}

// byteCount counts the bytes a probe's transport connections move.
type byteCount struct{ sent, received atomic.Int64 }

// countingConn counts what passes through a net.Conn into n.
type countingConn struct {
	net.Conn
	n *byteCount
}

func (c *countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.received.Add(int64(k))
	return k, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	k, err := c.Conn.Write(p)
	c.n.sent.Add(int64(k))
	return k, err
}
