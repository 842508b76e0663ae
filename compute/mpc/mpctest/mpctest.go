// Package mpctest provides an in-memory Peer pair and deterministic
// randomness for tests of package mpc. Not for production use.
package mpctest

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
)

// Pipe returns two connected peers. Every message one sends is delivered to
// the other's Recv; Record, if set, sees every message a side receives.
func Pipe(buffer int) (*Peer, *Peer) {
	ab := make(chan []byte, buffer)
	ba := make(chan []byte, buffer)
	return &Peer{in: ba, out: ab}, &Peer{in: ab, out: ba}
}

// Peer is one end of a Pipe.
type Peer struct {
	in, out chan []byte
	mu      sync.Mutex
	// Received holds a copy of every message received when Keep is set.
	Keep     bool
	Received [][]byte
	// Sent counts bytes sent.
	Sent int
}

// Send queues msg for the other end.
func (p *Peer) Send(ctx context.Context, msg []byte) error {
	p.mu.Lock()
	p.Sent += len(msg)
	p.mu.Unlock()
	select {
	case p.out <- append([]byte(nil), msg...):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Recv returns the next message from the other end.
func (p *Peer) Recv(ctx context.Context) ([]byte, error) {
	select {
	case m, ok := <-p.in:
		if !ok {
			return nil, errors.New("mpctest: closed")
		}
		if p.Keep {
			p.mu.Lock()
			p.Received = append(p.Received, m)
			p.mu.Unlock()
		}
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Rand is a deterministic io.Reader for dealer randomness in tests.
type Rand struct{ r *rand.ChaCha8 }

// NewRand returns a reader seeded with seed.
func NewRand(seed uint64) *Rand {
	var s [32]byte
	for i := 0; i < 8; i++ {
		s[i] = byte(seed >> (8 * i))
	}
	return &Rand{rand.NewChaCha8(s)}
}

func (r *Rand) Read(p []byte) (int, error) { return r.r.Read(p) }
