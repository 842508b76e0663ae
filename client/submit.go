package client

// Anonymous ticket submission (spec/11-verification.md §3.5): tickets wait
// in a bounded queue; the submitter sends every queued ticket of a model in
// one batch, after a delay drawn uniformly from [0, ticket_delay] once the
// first of the batch arrived, over a circuit of its own (client → guard →
// verifier) that carries nothing else. A ticket carries no client identity
// and no circuit id; the batch and the delay unlink it in time from the
// session it checks.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/keys"
)

// ticket is a ticket of either kind: anonymous (verify.Ticket) or a
// party's (verify.PartyTicket).
type ticket interface{ Append(dst []byte) []byte }

// maxQueuedTickets bounds the tickets waiting for submission; older ones
// are dropped first.
const maxQueuedTickets = 256

// defaultTicketDelay is the longest random delay before a batch leaves.
const defaultTicketDelay = time.Minute

type submitter struct {
	b     *backend
	delay time.Duration

	mu    sync.Mutex // guards queue and n
	queue map[string][]ticket
	n     int
	wake  chan struct{}

	// sent counts tickets a verifier acknowledged (tests and metrics).
	sentMu sync.Mutex
	sent   int
}

func newSubmitter(b *backend, delay time.Duration) *submitter {
	if delay == 0 {
		delay = defaultTicketDelay
	}
	return &submitter{b: b, delay: max(delay, 0), queue: map[string][]ticket{}, wake: make(chan struct{}, 1)}
}

// add queues tickets of modelID.
func (u *submitter) add(modelID string, ts ...ticket) {
	if u == nil || len(ts) == 0 {
		return
	}
	u.mu.Lock()
	u.queue[modelID] = append(u.queue[modelID], ts...)
	u.n += len(ts)
	for u.n > maxQueuedTickets {
		for id, q := range u.queue {
			drop := min(len(q), u.n-maxQueuedTickets)
			u.queue[id] = q[drop:]
			u.n -= drop
			if len(u.queue[id]) == 0 {
				delete(u.queue, id)
			}
			break
		}
	}
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// run submits batches until ctx ends.
func (u *submitter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.wake:
		}
		wait := time.Duration(0)
		if u.delay > 0 {
			wait = rand.N(u.delay + 1)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		u.mu.Lock()
		batch := u.queue
		u.queue, u.n = map[string][]ticket{}, 0
		u.mu.Unlock()
		for id, ts := range batch {
			if err := u.submit(ctx, id, ts); err != nil {
				u.b.log.Info("tickets not submitted", "model", id, "tickets", len(ts), "err", err)
			}
		}
	}
}

// errNoVerifier: the consensus lists no usable verifier of the model.
var errNoVerifier = errors.New("client: no verifier for the model")

// pickVerifier returns a usable verifier of modelID other than the guard.
func (b *backend) pickVerifier(c *directory.Consensus, modelID string, guard *directory.RouterStatus) (*directory.RouterStatus, error) {
	var cands []*directory.RouterStatus
	for i := range c.Relays {
		r := &c.Relays[i]
		if r.HasRole(directory.RoleVerifier) && r.Verifier != nil && r.Verifier.Model == modelID &&
			usable(r, directory.FlagValid) && r.Fingerprint != guard.Fingerprint && !sameFamily(r, guard) {
			cands = append(cands, r)
		}
	}
	if len(cands) == 0 {
		return nil, errNoVerifier
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return cands[b.rng.IntN(len(cands))], nil
}

// hasVerifier reports whether c lists a verifier of modelID.
func hasVerifier(c *directory.Consensus, modelID string) bool {
	for i := range c.Relays {
		r := &c.Relays[i]
		if r.HasRole(directory.RoleVerifier) && r.Verifier != nil && r.Verifier.Model == modelID &&
			usable(r, directory.FlagValid) {
			return true
		}
	}
	return false
}

// submit sends ts over a fresh circuit guard → verifier.
func (u *submitter) submit(ctx context.Context, modelID string, ts []ticket) error {
	b := u.b
	c, err := b.dir.Current()
	if err != nil {
		return err
	}
	var g *directory.RouterStatus
	if b.bridges != nil {
		g, err = b.bridges.choose(ctx)
	} else {
		g, err = b.guards.Choose(c.Relays)
	}
	if err != nil {
		return err
	}
	v, err := b.pickVerifier(c, modelID, g)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.BuildTimeout+time.Duration(len(ts))*b.cfg.StepTimeout)
	defer cancel()
	circ, err := b.dialer.buildCircuit(ctx, &Path{Hops: []*directory.RouterStatus{g, v}}, b.cfg.Hybrid)
	if err != nil {
		return err
	}
	defer circ.Destroy()
	for _, t := range ts {
		for _, f := range hop.TicketFragments(t.Append(nil)) {
			if err := circ.Send(ctx, 1, f.Append(nil)); err != nil {
				return fmt.Errorf("client: send ticket: %w", err)
			}
		}
		_, reply, err := circ.Recv(ctx)
		if err != nil {
			return fmt.Errorf("client: ticket: %w", err)
		}
		m, err := hop.Decode(reply)
		if err != nil {
			return fmt.Errorf("client: ticket: %w", err)
		}
		if _, ok := m.(*hop.TicketOK); !ok {
			// A refused ticket (busy, replayed) is dropped; the others go on.
			b.log.Debug("ticket refused", "verifier", v.Fingerprint.String(), "reply", m.Type().String())
			continue
		}
		u.sentMu.Lock()
		u.sent++
		u.sentMu.Unlock()
	}
	return nil
}

// badComputeRelays lists the relays c flags BadCompute.
func badComputeRelays(c *directory.Consensus) []keys.Fingerprint {
	var out []keys.Fingerprint
	for i := range c.Relays {
		if c.Relays[i].HasFlag(directory.FlagBadCompute) {
			out = append(out, c.Relays[i].Fingerprint)
		}
	}
	return out
}
