package model

import (
	"fmt"
	"sync"
)

// SessionOptions configure one session.
type SessionOptions struct {
	// MaxContext lowers the shard's context limit for this session; 0 keeps it.
	MaxContext int
	// AllLogits makes the last shard return logits for every input position
	// (n*Vocab values) instead of only the last one. Meant for tests.
	AllLogits bool
	// FinalHidden makes the last shard return the last position's hidden
	// state (Dim values, the residual stream after the last layer) instead
	// of its logits: a client holding the model's ends (Ends) applies the
	// final norm and the output head itself.
	FinalHidden bool
}

// kvGrowMin is the smallest KV capacity step, in positions.
const kvGrowMin = 64

// Session is one sequence's state on a shard: its KV cache for the shard's
// layers and its scratch buffers. A Session serialises its own calls; many
// sessions may run concurrently on one shard.
type Session struct {
	shard       *Shard
	maxCtx      int
	allLogits   bool
	finalHidden bool

	mu       sync.Mutex // guards everything below
	closed   bool
	n        int         // positions in the cache
	capacity int         // positions allocated
	k, v     [][]float32 // per shard layer, capacity*KVDim
	reserved int64
	scr      *scratch
}

// NewSession opens a session, subject to the shard's MaxSessions limit.
func (s *Shard) NewSession(opts SessionOptions) (*Session, error) {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	s.acct.Lock()
	defer s.acct.Unlock()
	if s.limits.MaxSessions > 0 && s.sessions >= s.limits.MaxSessions {
		return nil, fmt.Errorf("%w: limit %d", ErrTooManySessions, s.limits.MaxSessions)
	}
	maxCtx := s.limits.MaxContext
	if opts.MaxContext > 0 && opts.MaxContext < maxCtx {
		maxCtx = opts.MaxContext
	}
	s.sessions++
	ss := &Session{shard: s, maxCtx: maxCtx, allLogits: opts.AllLogits, finalHidden: opts.FinalHidden}
	s.takeSpare(ss)
	return ss, nil
}

// Len returns the number of positions in the session's KV cache; the next
// forward pass must start there.
func (ss *Session) Len() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.n
}

// MaxContext returns the session's context limit in positions.
func (ss *Session) MaxContext() int { return ss.maxCtx }

// Truncate drops every cached position >= pos, so that the sequence can be
// replayed from pos.
func (ss *Session) Truncate(pos int) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return ErrClosed
	}
	if pos < 0 || pos > ss.n {
		return fmt.Errorf("model: truncate to %d outside [0, %d]", pos, ss.n)
	}
	ss.n = pos
	return nil
}

// Close frees the session's cache and its slot on the shard. It is idempotent.
func (ss *Session) Close() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return nil
	}
	ss.closed = true
	s := ss.shard
	s.acct.Lock()
	s.sessions--
	s.memUsed -= ss.reserved
	s.putSpare(ss)
	s.acct.Unlock()
	ss.k, ss.v, ss.scr = nil, nil, nil
	ss.reserved = 0
	return nil
}

// KVBytes returns the bytes of KV cache a session holds for ctx positions on
// this shard.
func (s *Shard) KVBytes(ctx int) int64 {
	return 2 * 4 * int64(len(s.layers)) * int64(ctx) * int64(s.cfg.KVDim())
}

// ensure grows the cache to hold need positions. Called with ss.mu held.
func (ss *Session) ensure(need int) error {
	if need > ss.maxCtx {
		return fmt.Errorf("%w: %d positions, limit %d", ErrContextTooLong, need, ss.maxCtx)
	}
	if need <= ss.capacity {
		return nil
	}
	newCap := max(need, 2*ss.capacity, kvGrowMin)
	newCap = min(newCap, ss.maxCtx)
	s := ss.shard
	delta := s.KVBytes(newCap) - s.KVBytes(ss.capacity)
	if err := s.reserve(delta); err != nil {
		return err
	}
	kv := s.cfg.KVDim()
	for i := range ss.k {
		ss.k[i] = grow(ss.k[i], ss.n*kv, newCap*kv)
		ss.v[i] = grow(ss.v[i], ss.n*kv, newCap*kv)
	}
	ss.capacity = newCap
	ss.reserved += delta
	return nil
}

// grow returns a slice of length n holding buf[:keep]: buf itself when its
// capacity allows (a spare arena's cache, already in memory), else a new
// one.
func grow(buf []float32, keep, n int) []float32 {
	if cap(buf) >= n {
		return buf[:n]
	}
	nb := make([]float32, n)
	copy(nb, buf[:keep])
	return nb
}
