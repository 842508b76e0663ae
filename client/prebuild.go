package client

// Circuits built ahead of need (spec/08-client-api.md §10): after a request
// takes a circuit, the client builds one spare onion circuit for that model
// in the background (dial, link handshake, CREATE and every EXTEND), begun
// once the request's first token is out (generation.startRefill), so the
// next request only has to open its compute sessions. A spare has carried
// nothing and belongs to no isolation key until a request takes it; after
// that it is that request's alone and destroyed with it. A spare whose
// circuit died, or that is older than spareLifetime, is dropped.

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/origin"
)

// spareLifetime bounds how long a prebuilt circuit waits for a request.
const spareLifetime = 5 * time.Minute

type spareCircuit struct {
	path  *Path
	circ  *origin.Circuit
	built time.Time
}

type spares struct {
	mu      sync.Mutex // guards byModel and building
	byModel map[string]*spareCircuit
	// building holds, per key, a channel closed when the spare being
	// built for it is ready or has failed.
	building map[string]chan struct{}
	// testGate, when set (tests), holds every spare build until closed;
	// testAtGate, when set, is sent to (without blocking) when a build
	// reaches the gate.
	testGate, testAtGate chan struct{}
	// builders counts refill goroutines; the client waits for them before
	// it closes the transports they dial with. No refill starts once
	// closed is set.
	builders sync.WaitGroup
	closed   bool
}

// spareKey names the spares of a model and mode.
func spareKey(lm *localModel, mode Mode) string { return lm.id + ":" + string(mode) }

// pending returns a channel closed when the spare being built for key is
// ready or has failed; nil when none is being built.
func (s *spares) pending(key string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.building[key]
}

// take returns the spare for modelID if it is alive, fresh, and uses none of
// the relays in avoid; otherwise nil (and a stale spare is destroyed).
func (s *spares) take(modelID string, avoid []keys.Fingerprint) *spareCircuit {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.byModel[modelID]
	if sp == nil {
		return nil
	}
	delete(s.byModel, modelID)
	dead := false
	select {
	case <-sp.circ.Done():
		dead = true
	default:
	}
	usable := !dead && time.Since(sp.built) < spareLifetime
	for _, h := range sp.path.Hops {
		if slices.Contains(avoid, h.Fingerprint) {
			usable = false
		}
	}
	if !usable {
		sp.circ.Destroy()
		return nil
	}
	return sp
}

// prebuildAtStart builds a spare circuit for every local model in the
// client's default mode as soon as the consensus allows, as Tor builds
// circuits ahead of the first request: the first request then finds its
// circuit built, as later ones do (over links of 50 ms, the six link round
// trips of a three-hop build, 600 ms, leave its time to first token). It
// tries again every startSpareRetry, and at once whenever a newer consensus
// is installed (the one that makes a model servable is also the one that
// lists it, so a first request may follow it within milliseconds), until
// each model has had a spare once, and stops with ctx (the client's
// lifetime). Models the client learns from bundles are not known before
// their first request and get none.
func (b *backend) prebuildAtStart(ctx context.Context) {
	t := time.NewTicker(startSpareRetry)
	defer t.Stop()
	had := map[string]bool{}
	for {
		// Taken before this round looks at the consensus, so that one
		// installed during the round wakes the next.
		var installed <-chan struct{}
		if n, ok := b.dir.(installNotifier); ok {
			installed = n.Installed()
		}
		models := b.localModels() // (bundles add models while this runs)
		for _, lm := range models {
			key := spareKey(lm, b.mode)
			b.spares.mu.Lock()
			have := b.spares.byModel[key] != nil
			b.spares.mu.Unlock()
			if have {
				had[key] = true
			} else if !had[key] {
				b.refill(ctx, lm, b.mode)
			}
		}
		if len(had) == len(models) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-installed:
		}
	}
}

// installNotifier is a consensus source that tells when a newer consensus
// is installed (directory.Fetcher does).
type installNotifier interface {
	Installed() <-chan struct{}
}

// startSpareRetry is how often prebuildAtStart tries again while a model's
// first spare cannot be built (no consensus yet, no path). A variable for
// tests.
var startSpareRetry = 500 * time.Millisecond

// refill builds a spare for lm in the background unless one exists or is
// being built. ctx is the client's lifetime.
func (b *backend) refill(ctx context.Context, lm *localModel, mode Mode) {
	key := spareKey(lm, mode)
	b.spares.mu.Lock()
	if b.spares.byModel == nil {
		b.spares.byModel, b.spares.building = map[string]*spareCircuit{}, map[string]chan struct{}{}
	}
	if b.spares.byModel[key] != nil || b.spares.building[key] != nil || b.spares.closed || ctx.Err() != nil {
		b.spares.mu.Unlock()
		return
	}
	done := make(chan struct{})
	b.spares.building[key] = done
	b.spares.builders.Add(1)
	gate, atGate := b.spares.testGate, b.spares.testAtGate
	b.spares.mu.Unlock()
	go func() {
		defer b.spares.builders.Done()
		defer func() {
			b.spares.mu.Lock()
			delete(b.spares.building, key)
			b.spares.mu.Unlock()
			close(done)
		}()
		if gate != nil {
			select {
			case atGate <- struct{}{}:
			default:
			}
			select {
			case <-gate:
			case <-ctx.Done():
				return
			}
		}
		c, err := b.dir.Current()
		if err != nil {
			return
		}
		m := catalogEntry(c, lm)
		if m == nil {
			return
		}
		// A spare belongs to no isolation key yet: it avoids only the
		// relays at capacity.
		busy, _ := b.relays.busyNow()
		p, err := b.selectPath(c, m, mode, busy)
		if err != nil {
			return
		}
		bctx, cancel := context.WithTimeout(ctx, b.cfg.BuildTimeout)
		defer cancel()
		circ, err := b.buildPath(bctx, p)
		if err != nil {
			b.log.Debug("spare circuit not built", "err", err)
			b.metrics.circuitFailed("build", err, p)
			return
		}
		b.metrics.built(mode, true)
		b.spares.mu.Lock()
		defer b.spares.mu.Unlock()
		if ctx.Err() != nil || b.spares.byModel[key] != nil {
			circ.Destroy()
			return
		}
		b.spares.byModel[key] = &spareCircuit{path: p, circ: circ, built: time.Now()}
	}()
}

// close waits for spares being built (their context must be done by now)
// and destroys every spare.
func (s *spares) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.builders.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sp := range s.byModel {
		sp.circ.Destroy()
		delete(s.byModel, id)
	}
}
