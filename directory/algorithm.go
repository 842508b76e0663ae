package directory

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/unfed/unfed/directory/doc"
	"github.com/unfed/unfed/relay/keys"
)

// The consensus algorithm, methods 1 and 2 (spec/04-directory.md §7). It is a pure
// function of the set of votes and the number of configured authorities, so
// authorities holding the same votes produce byte-identical consensuses.

// ErrTooFewVotes is returned when no more than half of the configured
// authorities voted: such a consensus could never gather enough signatures.
var ErrTooFewVotes = errors.New("directory: too few votes for a consensus")

// ComputeConsensus computes the unsigned consensus from verified votes for
// one period. Votes from authorities outside trust, repeated voters, and
// votes for another valid-after than the first vote's are an error: the
// caller filters them.
func ComputeConsensus(votes []*Vote, trust AuthoritySet) (*Consensus, error) {
	n := len(trust.Authorities)
	majority := n/2 + 1 // "more than half of ALL configured authorities"
	if len(votes) < majority {
		return nil, fmt.Errorf("%w: %d votes, need %d of %d", ErrTooFewVotes, len(votes), majority, n)
	}
	votes = slices.Clone(votes)
	slices.SortFunc(votes, func(a, b *Vote) int { return compareFP(a.Authority.Fingerprint, b.Authority.Fingerprint) })
	for i, v := range votes {
		if trust.Lookup(v.Authority.Fingerprint) == nil {
			return nil, fmt.Errorf("directory: vote from unknown authority %s", v.Authority.Fingerprint)
		}
		if i > 0 && votes[i-1].Authority.Fingerprint == v.Authority.Fingerprint {
			return nil, fmt.Errorf("directory: two votes from %s", v.Authority.Fingerprint)
		}
		if !v.ValidAfter.Equal(votes[0].ValidAfter) {
			return nil, fmt.Errorf("directory: votes for different periods (%s, %s)", fmtTime(votes[0].ValidAfter), fmtTime(v.ValidAfter))
		}
	}
	method, err := chooseMethod(votes, majority)
	if err != nil {
		return nil, err
	}
	c := &Consensus{Method: method, ValidAfter: votes[0].ValidAfter, KnownFlags: knownFlagsFor(method)}
	// Period ends and delays: low median of the voters' values (§7.2).
	c.FreshUntil = medianTime(votes, func(v *Vote) time.Time { return v.FreshUntil })
	c.ValidUntil = medianTime(votes, func(v *Vote) time.Time { return v.ValidUntil })
	if !c.FreshUntil.After(c.ValidAfter) || c.ValidUntil.Before(c.FreshUntil) {
		return nil, errors.New("directory: votes' periods are inconsistent")
	}
	c.VoteDelay = time.Duration(medianOf(votes, func(v *Vote) uint64 { return uint64(v.VoteDelay) }))
	c.DistDelay = time.Duration(medianOf(votes, func(v *Vote) uint64 { return uint64(v.DistDelay) }))
	for _, v := range votes {
		c.Authorities = append(c.Authorities, v.Authority)
	}
	c.Params = consensusParams(votes, majority)
	c.Models = consensusModels(votes, majority)
	if method >= MintKeyMethod {
		c.MintKeys = consensusMintKeys(votes)
	}
	c.Relays = consensusRelays(votes, majority, c.KnownFlags)
	if method < VerifierMethod {
		// Authorities of older code ignore the line (spec §2.3): drop it
		// so that they compute the same document.
		for i := range c.Relays {
			c.Relays[i].Verifier = nil
		}
	}
	if method >= WeightsMethod {
		assignWeights(c.Relays, votes, majority, c.Params)
	}
	if err := c.encodeBody(); err != nil {
		return nil, err
	}
	return c, nil
}

// chooseMethod returns the highest method this code implements that at
// least majority of the votes list (§7.1). Votes that do not list it still
// count: they just contribute nothing the method adds.
func chooseMethod(votes []*Vote, majority int) (int, error) {
	for _, m := range slices.Backward(ConsensusMethods) {
		n := 0
		for _, v := range votes {
			if slices.Contains(v.Methods, m) {
				n++
			}
		}
		if n >= majority {
			return m, nil
		}
	}
	return 0, fmt.Errorf("directory: no consensus method of %v is listed by %d of the votes", ConsensusMethods, majority)
}

func medianOf(votes []*Vote, f func(*Vote) uint64) uint64 {
	vs := make([]uint64, len(votes))
	for i, v := range votes {
		vs[i] = f(v)
	}
	return lowMedian(vs)
}

func medianTime(votes []*Vote, f func(*Vote) time.Time) time.Time {
	return time.Unix(int64(medianOf(votes, func(v *Vote) uint64 { return uint64(f(v).Unix()) })), 0).UTC()
}

// consensusParams: a parameter is included when more than half of all
// authorities set it; its value is the low median of the values set.
func consensusParams(votes []*Vote, majority int) map[string]int64 {
	vals := map[string][]int64{}
	for _, v := range votes {
		for k, x := range v.Params {
			vals[k] = append(vals[k], x)
		}
	}
	out := map[string]int64{}
	for k, xs := range vals {
		if len(xs) >= majority {
			slices.Sort(xs)
			out[k] = xs[(len(xs)-1)/2]
		}
	}
	return out
}

// consensusModels: a catalog entry is included when more than half of all
// authorities list the identical entry for that model id.
func consensusModels(votes []*Vote, majority int) []Model {
	counts := map[string]map[string]int{} // id -> encoding -> votes
	byEnc := map[string]Model{}
	for _, v := range votes {
		for _, m := range v.Models {
			var w doc.Writer
			encodeModel(&w, m)
			b, _ := w.Bytes()
			if counts[m.ID] == nil {
				counts[m.ID] = map[string]int{}
			}
			counts[m.ID][string(b)]++
			byEnc[string(b)] = m
		}
	}
	var out []Model
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		for enc, k := range counts[id] {
			if k >= majority { // at most one encoding can hold a majority
				out = append(out, byEnc[enc])
			}
		}
	}
	return out
}

// consensusRelays: a relay is included when more than half of all
// authorities list it. Its descriptor fields come from the variant most
// voters listed (ties: latest published, then greatest encoding); each flag
// is set when more than half of all authorities set it; capacity and price
// are the low median over the voters that list the relay (§7.3).
func consensusRelays(votes []*Vote, majority int, known []Flag) []RouterStatus {
	type entry struct {
		variants map[string]int
		byEnc    map[string]*RouterStatus
		flags    map[Flag]int
		sess     []uint64
		tps      []uint64
		price    []uint64
	}
	all := map[keys.Fingerprint]*entry{}
	for _, v := range votes {
		for i := range v.Relays {
			r := &v.Relays[i]
			e := all[r.Fingerprint]
			if e == nil {
				e = &entry{variants: map[string]int{}, byEnc: map[string]*RouterStatus{}, flags: map[Flag]int{}}
				all[r.Fingerprint] = e
			}
			var w doc.Writer
			encodeRouterDesc(&w, r)
			b, _ := w.Bytes()
			e.variants[string(b)]++
			e.byEnc[string(b)] = r
			for _, f := range r.Flags {
				if slices.Contains(known, f) {
					e.flags[f]++
				}
			}
			e.sess = append(e.sess, r.Capacity.Sessions)
			e.tps = append(e.tps, r.Capacity.TokensPerSec)
			e.price = append(e.price, r.PricePerToken)
		}
	}
	out := make([]RouterStatus, 0, len(all))
	for fp, e := range all {
		if len(e.sess) < majority {
			continue
		}
		var best string
		for enc, k := range e.variants {
			if best == "" || cmp.Or(cmp.Compare(k, e.variants[best]),
				e.byEnc[enc].Published.Compare(e.byEnc[best].Published), cmp.Compare(enc, best)) > 0 {
				best = enc
			}
		}
		r := *e.byEnc[best]
		r.Fingerprint = fp
		r.Flags = nil
		r.Measured, r.Weight, r.Unmeasured = 0, 0, false // set by assignWeights (method 2)
		for _, f := range known {
			if e.flags[f] >= majority {
				r.Flags = append(r.Flags, f)
			}
		}
		r.Capacity = Capacity{Sessions: lowMedian(e.sess), TokensPerSec: lowMedian(e.tps)}
		r.PricePerToken = lowMedian(e.price)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b RouterStatus) int { return compareFP(a.Fingerprint, b.Fingerprint) })
	return out
}

// assignWeights sets every relay's path-selection weight (method 2, §7.4):
//
//  1. the claim bound B is the relay's claimed sessions (the consensus
//     value) times weight-per-session;
//  2. a relay is measured when at least majority of the votes give it a
//     Measured value; M is the low median of those values;
//  3. its raw weight is min(M, B), or min(weight-unmeasured, B) for a relay
//     that is not measured (marked Unmeasured);
//  4. the cap is weight-cap times the low median of the measured relays'
//     raw weights (no cap when no relay is measured);
//  5. Weight = max(1, min(raw, cap, MaxWeight)).
//
// Parameters come from the consensus, with DefaultParams for those it does
// not set, each kept within its range.
func assignWeights(relays []RouterStatus, votes []*Vote, majority int, params map[string]int64) {
	// The Measured values of relay i are vals[i*nv : i*nv+count[i]].
	nv := len(votes)
	index := make(map[keys.Fingerprint]int, len(relays))
	for i := range relays {
		index[relays[i].Fingerprint] = i
	}
	vals, count := make([]uint64, len(relays)*nv), make([]int, len(relays))
	for _, v := range votes {
		for k := range v.Relays {
			i, ok := index[v.Relays[k].Fingerprint]
			if w := v.Relays[k].Measured; ok && w > 0 && count[i] < nv {
				vals[i*nv+count[i]] = min(w, MaxWeight)
				count[i]++
			}
		}
	}
	perSession := weightParam(params, ParamWeightPerSession, MaxWeight)
	unmeasured := weightParam(params, ParamWeightUnmeasured, MaxWeight)
	capTimes := weightParam(params, ParamWeightCap, 1<<16)
	raw := make([]uint64, len(relays))
	var pool []uint64
	for i := range relays {
		r := &relays[i]
		bound := min(r.Capacity.Sessions, maxSessions) * perSession
		if count[i] >= majority {
			raw[i] = min(lowMedian(vals[i*nv:i*nv+count[i]]), bound)
			pool = append(pool, raw[i])
		} else {
			raw[i] = min(unmeasured, bound)
			r.Unmeasured = true
		}
	}
	limit := uint64(MaxWeight)
	if len(pool) > 0 {
		limit = min(limit, lowMedian(pool)*capTimes)
	}
	for i := range relays {
		relays[i].Weight = max(1, min(raw[i], limit))
	}
}

// weightParam returns a weight parameter from params (DefaultParams when
// unset), kept within [1, hi].
func weightParam(params map[string]int64, name string, hi uint64) uint64 {
	return min(uint64(max(param(params, name), 1)), hi)
}
