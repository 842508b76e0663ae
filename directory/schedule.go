package directory

import (
	"context"
	"sync"
	"time"
)

// The voting schedule (spec/04-directory.md §9.1). Periods start at
// multiples of the interval since the Unix epoch. For the period starting at
// T, with vote delay VD and distribution delay DD:
//
//	T-VD-DD-2PT   probe relays (and measure them), each phase within the probe
//	              timeout PT, so that the vote is ready when the vote phase opens
//	T-VD-DD       make and sign our vote, POST it to every peer
//	T-VD-DD+VD/2  GET the vote of every peer whose vote we lack
//	T-DD          compute the consensus, sign it, POST our signatures
//	T-DD/2        GET the signatures of every peer whose signature we lack
//	T             publish, if more than half of all authorities signed
//
// Each exchange is bounded by the start of the next step, but given at
// least minExchange: on a loaded machine a step that wakes late still gets
// to send (a late vote is better than none; the receiver decides).
//
// Why periods were missed under load (issue 22): probing ran at T-VD-DD and
// could take the probe timeout twice (probes, then measurements) when some
// relays hang, that is VD/2, exactly the deadline of the vote broadcast, so
// the vote went out late or not at all and peers' GETs raced its building;
// authorities then computed the consensus from different vote sets and
// their signatures did not match. Probing now ends before the vote phase
// opens whenever the gap between periods allows it.
//
// Why relays far from the authorities were never Running (issue 16): the
// probe timeout was a quarter of the vote delay (0.5 s in an 8 s testnet
// period), while probing a compute relay takes three to five round trips
// (link handshake, circuit, SETUP, and for a model's last shard a second
// circuit and SETUP): at 100 ms RTT the probe could not finish. The phases
// now get the room the schedule has before the vote phase (half each) by
// default, and each probe bounds its own round trips by the round-trip
// time its link handshake measured (relay.LinkProber), so a slow or hung
// relay is given up on after a few of its own RTTs, not after the phase.

// minExchange is the least time an exchange gets, however late it starts.
const minExchange = 500 * time.Millisecond

// defaultProbeTimeout is the probe timeout when none is configured: half
// of the room between the previous period's publication and this vote
// phase (less minExchange), so that probes and then measurements fill it,
// and at least VoteDelay/4 when there is no such room.
func defaultProbeTimeout(interval, voteDelay, distDelay time.Duration) time.Duration {
	room := (interval - voteDelay - distDelay - minExchange) / 2
	return max(room, voteDelay/4)
}

// nextValidAfter returns the first period start strictly after now.
func (a *Authority) nextValidAfter(now time.Time) time.Time {
	iv := int64(a.cfg.Interval / time.Second)
	return time.Unix((now.Unix()/iv+1)*iv, 0).UTC()
}

func (a *Authority) sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(t.Sub(a.cfg.Now()))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func (a *Authority) runSchedule(ctx context.Context) {
	for ctx.Err() == nil {
		va := a.nextValidAfter(a.cfg.Now())
		if a.cfg.Now().After(a.latestProbe(va)) {
			va = va.Add(a.cfg.Interval) // too late to vote on this one
		}
		if err := a.runRound(ctx, va); err != nil && ctx.Err() == nil {
			a.log.Warn("no consensus this period", "valid_after", fmtTime(va), "err", err)
		}
	}
}

// probeAt is when probing for the period starting at va begins: early
// enough that probes and measurements (each bounded by the probe timeout)
// end as the vote phase opens, when the gap between the previous period's
// start and this vote phase has room for them; else as the vote phase opens.
func (a *Authority) probeAt(va time.Time) time.Time {
	voteAt := va.Add(-a.cfg.VoteDelay - a.cfg.DistDelay)
	budget := 2 * a.cfg.ProbeTimeout
	if a.cfg.Interval-a.cfg.VoteDelay-a.cfg.DistDelay >= budget+minExchange {
		return voteAt.Add(-budget)
	}
	return voteAt
}

// latestProbe is the latest time probing for the period starting at va
// may begin: when probing ends before the vote phase, as long as each
// phase still gets minExchange (an authority that starts late in a period
// probes with what is left rather than wait a period); else probeAt.
func (a *Authority) latestProbe(va time.Time) time.Time {
	voteAt := va.Add(-a.cfg.VoteDelay - a.cfg.DistDelay)
	if at := a.probeAt(va); at.Equal(voteAt) {
		return at
	}
	return voteAt.Add(-2 * minExchange)
}

// phaseTimeout is how long each probing phase for the period starting at
// va may take when probing begins at now: the probe timeout, or, when
// probing ends before the vote phase and starts late, half of what is left.
func (a *Authority) phaseTimeout(va, now time.Time) time.Duration {
	voteAt := va.Add(-a.cfg.VoteDelay - a.cfg.DistDelay)
	if a.probeAt(va).Equal(voteAt) {
		return a.cfg.ProbeTimeout
	}
	return max(min(a.cfg.ProbeTimeout, voteAt.Sub(now)/2), minExchange)
}

// runRound runs the steps for the period starting at va.
func (a *Authority) runRound(ctx context.Context, va time.Time) error {
	vd, dd := a.cfg.VoteDelay, a.cfg.DistDelay
	voteAt := va.Add(-vd - dd)
	if !a.sleepUntil(ctx, a.probeAt(va)) {
		return ctx.Err()
	}
	a.probeAll(ctx, va, a.phaseTimeout(va, a.cfg.Now()))
	if !a.sleepUntil(ctx, voteAt) {
		return ctx.Err()
	}
	v, err := a.buildVote(va)
	if err != nil {
		return err
	}
	a.mu.Lock()
	r := a.roundFor(va)
	r.vote = v
	r.votes[a.self.Fingerprint] = v
	a.mu.Unlock()
	a.withDeadline(ctx, voteAt.Add(vd/2), func(ctx context.Context) { a.broadcast(ctx, PathVote, v.Raw()) })

	if !a.sleepUntil(ctx, voteAt.Add(vd/2)) {
		return ctx.Err()
	}
	a.withDeadline(ctx, va.Add(-dd), func(ctx context.Context) { a.fetchMissingVotes(ctx, va) })

	if !a.sleepUntil(ctx, va.Add(-dd)) {
		return ctx.Err()
	}
	own, err := a.computeConsensus(va)
	if err != nil {
		return err
	}
	body, err := own.encode()
	if err != nil {
		return err
	}
	a.withDeadline(ctx, va.Add(-dd/2), func(ctx context.Context) { a.broadcast(ctx, PathSignatures, body) })

	if !a.sleepUntil(ctx, va.Add(-dd/2)) {
		return ctx.Err()
	}
	a.withDeadline(ctx, va, func(ctx context.Context) { a.fetchMissingSignatures(ctx, va) })

	if !a.sleepUntil(ctx, va) {
		return ctx.Err()
	}
	if err := a.publish(va); err != nil {
		return err
	}
	a.log.Info("consensus published", "valid_after", fmtTime(va), "relays", len(a.Current().Relays),
		"signatures", len(a.Current().Signatures))
	return nil
}

func (a *Authority) withDeadline(ctx context.Context, t time.Time, f func(context.Context)) {
	if least := a.cfg.Now().Add(minExchange); t.Before(least) {
		t = least
	}
	ctx, cancel := context.WithDeadline(ctx, t)
	defer cancel()
	f(ctx)
}

// fetchMissingVotes GETs the current vote of every peer we have no vote from.
func (a *Authority) fetchMissingVotes(ctx context.Context, va time.Time) {
	var wg sync.WaitGroup
	for _, p := range a.peers() {
		a.mu.Lock()
		have := a.roundFor(va).votes[p.Fingerprint] != nil
		a.mu.Unlock()
		if have {
			continue
		}
		wg.Go(func() {
			b, err := httpGet(ctx, a.cfg.HTTPClient, "http://"+p.Address+PathVoteCurrent, a.voteLimit())
			if err == nil {
				var v *Vote
				if v, err = a.acceptVote(b); err == nil && v.Authority.Fingerprint != p.Fingerprint {
					a.log.Info("peer served another authority's vote", "peer", p.Name)
				}
			}
			if err != nil {
				a.log.Info("no vote from peer", "peer", p.Name, "err", err)
			}
		})
	}
	wg.Wait()
}

// fetchMissingSignatures GETs the signatures held by every peer whose own
// signature we lack (a peer also passes on the signatures it collected).
func (a *Authority) fetchMissingSignatures(ctx context.Context, va time.Time) {
	var wg sync.WaitGroup
	for _, p := range a.peers() {
		a.mu.Lock()
		_, have := a.roundFor(va).sigs[p.Fingerprint]
		a.mu.Unlock()
		if have {
			continue
		}
		wg.Go(func() {
			b, err := httpGet(ctx, a.cfg.HTTPClient, "http://"+p.Address+PathSignaturesCurrent, MaxSignaturesDocSize)
			if err == nil {
				_, err = a.acceptSignatures(b)
			}
			if err != nil {
				a.log.Info("no signatures from peer", "peer", p.Name, "err", err)
			}
		})
	}
	wg.Wait()
}
