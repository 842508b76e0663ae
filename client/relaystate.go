package client

// What the client learns about relays from its own circuits, and how long it
// acts on it (spec/08-client-api.md §6, spec/03-compute.md §7):
//
//   - Capacity is not a fault. A relay that refuses a session or a circuit
//     for its limits (ERROR out-of-capacity, EXTEND_FAILED or DESTROY with
//     resource-limit) is *busy*: paths leave it out for a brief back-off,
//     1 s doubling to 4 s, plus up to half again at random, per relay and
//     for every request of this client (it says something about the relay's
//     load, nothing about anyone's traffic). A refusal while the back-off
//     runs (from a request sent before it began) does not lengthen it; a
//     relay that accepts a session is busy no more.
//   - A fault (bad-message, edge-auth, internal, mpc-failure, an unreachable
//     relay, a malformed or unexpected reply) is remembered per isolation
//     key, never across keys: what one caller's circuits met does not steer
//     another caller's paths, so a relay that fakes a failure (or claims
//     that its successor is unreachable) cannot herd everyone onto relays
//     of its choice. A fault counts for faultFor, and only until the
//     consensus lists a descriptor the relay published after it failed: a
//     relay that restarts publishes one and gets a fresh chance within a
//     consensus interval (a dead relay cannot). Faults are preferences, not
//     bans: when no path avoids them, a path through them is better than
//     none (the fault budget of the generation bounds the cost). Only a
//     relay an EXTEND could not reach is never used again by the same
//     generation (generation.gone).
//   - Failures that cannot be pinned on a relay (the circuit destroyed from
//     afar, a step timeout) make the generation prefer other relays for its
//     remaining attempts only (generation.suspects).
//
// The guard is different: guard failures go to the persistent guard state
// (guard.go) as guard-spec says, and a guard is never left for load.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
)

const (
	// busyBase is the first back-off of a relay at capacity; it doubles
	// with each refusal after a back-off ran out, up to busyMax.
	busyBase = time.Second
	busyMax  = 4 * time.Second
	// busyForget: a relay not refused for this long starts again at
	// busyBase.
	busyForget = 30 * time.Second
	// faultFor is how long a fault makes an isolation key's paths avoid a
	// relay (when they can), unless the relay publishes a descriptor after it.
	faultFor = 2 * time.Minute
	// maxFaultKeys bounds the isolation keys whose faults are kept; the
	// oldest go first.
	maxFaultKeys = 4096
	// minBusyWait is the shortest wait for a busy relay, so that a request
	// never spins on back-offs that are just ending.
	minBusyWait = 50 * time.Millisecond
)

type busyRelay struct {
	until   time.Time // left out of paths until then
	last    time.Time // the last refusal that started a back-off
	strikes int       // back-offs in a row
}

type faultRecord struct {
	at time.Time // when the relay failed
}

type keyFaults struct {
	newest time.Time
	relays map[keys.Fingerprint]faultRecord
}

// relayState holds busy relays (for the whole client) and faults (per
// isolation key). It is safe for concurrent use.
type relayState struct {
	now func() time.Time

	mu     sync.Mutex // guards everything below
	rng    *rand.Rand
	busy   map[keys.Fingerprint]*busyRelay
	faults map[string]*keyFaults
}

func newRelayState(now func() time.Time) *relayState {
	if now == nil {
		now = time.Now
	}
	return &relayState{now: now, rng: newSamplingRand(),
		busy: map[keys.Fingerprint]*busyRelay{}, faults: map[string]*keyFaults{}}
}

// markBusy records that fp refused for capacity, and returns how long it is
// left out of paths from now.
func (s *relayState) markBusy(fp keys.Fingerprint) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	b := s.busy[fp]
	if b == nil {
		b = &busyRelay{}
		s.busy[fp] = b
	}
	if now.Before(b.until) {
		return b.until.Sub(now)
	}
	if now.Sub(b.last) >= busyForget {
		b.strikes = 0
	}
	b.strikes++
	d := min(busyBase<<min(b.strikes-1, 8), busyMax)
	d += time.Duration(s.rng.Int64N(int64(d/2) + 1))
	b.until, b.last = now.Add(d), now
	return d
}

// accepted records that fp took a session: it is not busy.
func (s *relayState) accepted(fp keys.Fingerprint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy, fp)
}

// busyNow returns the relays in a back-off now and when the first of them
// ends (zero if none).
func (s *relayState) busyNow() ([]keys.Fingerprint, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out []keys.Fingerprint
	var first time.Time
	for fp, b := range s.busy {
		switch {
		case now.Before(b.until):
			out = append(out, fp)
			if first.IsZero() || b.until.Before(first) {
				first = b.until
			}
		case now.Sub(b.last) >= busyForget:
			delete(s.busy, fp)
		}
	}
	return out, first
}

// busyUntil returns when fp's back-off ends, if it is in one now.
func (s *relayState) busyUntil(fp keys.Fingerprint) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.busy[fp]; b != nil && s.now().Before(b.until) {
		return b.until, true
	}
	return time.Time{}, false
}

// markFault records that relay fp failed a circuit of isolation key key.
func (s *relayState) markFault(key string, fp keys.Fingerprint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	kf := s.faults[key]
	if kf == nil {
		if len(s.faults) >= maxFaultKeys {
			s.sweepLocked(now)
		}
		kf = &keyFaults{relays: map[keys.Fingerprint]faultRecord{}}
		s.faults[key] = kf
	}
	kf.newest = now
	kf.relays[fp] = faultRecord{at: now}
}

// sweepLocked drops expired faults, then the oldest keys while there are
// too many.
func (s *relayState) sweepLocked(now time.Time) {
	for key, kf := range s.faults {
		if now.Sub(kf.newest) >= faultFor {
			delete(s.faults, key)
		}
	}
	for len(s.faults) >= maxFaultKeys {
		var oldest string
		var at time.Time
		for key, kf := range s.faults {
			if at.IsZero() || kf.newest.Before(at) {
				oldest, at = key, kf.newest
			}
		}
		delete(s.faults, oldest)
	}
}

// faultsFor returns the relays isolation key key should avoid in c: those
// that failed its circuits within faultFor and whose descriptor in c was
// published before they failed, the newest fault first.
func (s *relayState) faultsFor(key string, c *directory.Consensus) []keys.Fingerprint {
	s.mu.Lock()
	defer s.mu.Unlock()
	kf := s.faults[key]
	if kf == nil {
		return nil
	}
	now := s.now()
	type fault struct {
		fp keys.Fingerprint
		at time.Time
	}
	var fs []fault
	for fp, f := range kf.relays {
		if now.Sub(f.at) >= faultFor {
			delete(kf.relays, fp)
			continue
		}
		if r := c.Relay(fp); r != nil && r.Published.After(f.at) {
			// It published a descriptor after it failed (it restarted,
			// or is up again): a fresh chance. A relay that died cannot;
			// the descriptor it published just before does not count.
			delete(kf.relays, fp)
			continue
		}
		fs = append(fs, fault{fp, f.at})
	}
	if len(kf.relays) == 0 {
		delete(s.faults, key)
	}
	// Stable: faults of one moment keep the map's (random) order.
	slices.SortStableFunc(fs, func(a, b fault) int { return b.at.Compare(a.at) })
	out := make([]keys.Fingerprint, len(fs))
	for i, f := range fs {
		out[i] = f.fp
	}
	return out
}

// admission bounds the generations this client runs at once (its own
// concurrency, not the network's): up to max run, up to maxQueued more wait
// for a slot, each at most the queue timeout; beyond that a request gets
// 429 with Retry-After.
type admission struct {
	slots     chan struct{}
	maxQueued int

	mu      sync.Mutex // guards waiting
	waiting int
}

// rateLimitRetryAfter is the Retry-After of a 429: slots of a loaded client
// turn over within seconds.
const rateLimitRetryAfter = 2 * time.Second

func newAdmission(maxConcurrent, maxQueued int) *admission {
	return &admission{slots: make(chan struct{}, maxConcurrent), maxQueued: maxQueued}
}

// acquire takes a slot, waiting at most timeout, and returns the function
// that gives it back. A nil admission admits everything.
func (a *admission) acquire(ctx context.Context, timeout time.Duration) (func(), error) {
	if a == nil {
		return func() {}, nil
	}
	release := func() { <-a.slots }
	select {
	case a.slots <- struct{}{}:
		return release, nil
	default:
	}
	a.mu.Lock()
	if a.waiting >= a.maxQueued {
		a.mu.Unlock()
		return nil, &openai.RateLimitError{RetryAfter: rateLimitRetryAfter,
			Reason: fmt.Sprintf("this proxy runs %d generations at once and %d more are waiting", cap(a.slots), a.maxQueued)}
	}
	a.waiting++
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.waiting--
		a.mu.Unlock()
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a.slots <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("client: generation canceled: %w", ctx.Err())
	case <-t.C:
		return nil, &openai.RateLimitError{RetryAfter: rateLimitRetryAfter,
			Reason: fmt.Sprintf("this proxy runs %d generations at once and none ended within %s", cap(a.slots), timeout)}
	}
}
