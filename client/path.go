package client

// Path selection (spec/08-client-api.md §10, spec/10-confidential.md §2, §7):
// a circuit for one model of N layers is
//
//	guard → S0 → S1 → … → Sn                            (anonymous)
//	guard → D1 → A1 → B1 → D2 → A2 → B2 → … → Dk → Ak → Bk  (confidential)
//
// chosen from the verified consensus. Anonymous: compute relays whose shards
// tile [0, N), no two relays of the path in one /16 (IPv4) or /32 (IPv6)
// network or declared family. Confidential: stages whose ranges tile
// [0, N), each from party relays (mpc lines) advertising exactly that range
// (any two of them can pair: A and B are the client's choice) and a dealer
// of the model; no relay twice on the circuit, and within a stage no two of
// D, A, B, the guard, in one network or family. Every role — guards (in
// guard.go's sampling), compute relays, parties and dealers — is weighted
// by the relay's consensus weight, which the authorities measure (spec/04
// §6.3, §7.4); the capacity a relay claims only bounds it from above there,
// and the client never reads it.

import (
	"cmp"
	crand "crypto/rand"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"slices"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/transports/onionaddr"
)

// ErrNoPath is returned when the consensus cannot supply a usable path.
var ErrNoPath = errors.New("client: no usable path")

// Path is a chosen circuit path: Hops[0] is the guard.
type Path struct {
	Hops []*directory.RouterStatus
	// Mode is the mode the path was chosen for.
	Mode Mode
	// Shards[i] is the layer range of Hops[i+1], the i-th compute relay
	// (anonymous mode; empty in confidential mode).
	Shards []directory.LayerRange
	// Stages are the confidential stages in layer order (confidential mode;
	// empty in anonymous mode). Stage i is Hops[3i+1] (its dealer),
	// Hops[3i+2] (A) and Hops[3i+3] (B), spec/10-confidential.md §2.
	Stages []Stage
}

// Stage is one stage of a confidential path: its layer range, served on
// secret shares by parties A and B with correlated randomness from Dealer.
type Stage struct {
	Range        directory.LayerRange
	Dealer, A, B *directory.RouterStatus
}

// PathSpec says what a path must provide.
type PathSpec struct {
	Model   string
	NLayers int
	// Mode selects the kind of circuit: ModeAnonymous or ModeConfidential.
	Mode Mode
	// Guard is the guard to use (from the guard set).
	Guard *directory.RouterStatus
	// Avoid lists relays that must not appear (failed ones).
	Avoid []keys.Fingerprint
}

// readSeed fills a sampling seed; crypto/rand except in tests.
var readSeed = crand.Read

// newSamplingRand returns the generator path and guard sampling draws from:
// ChaCha8 (a CSPRNG) seeded from crypto/rand, so neither its seed nor its
// future draws can be inferred from the paths a client was seen to choose,
// as a PCG's state can from its outputs.
func newSamplingRand() *rand.Rand {
	var seed [32]byte
	if _, err := readSeed(seed[:]); err != nil {
		// crypto/rand does not fail on supported platforms; a client
		// without randomness must not pick paths predictably.
		panic(fmt.Sprintf("client: no randomness for path sampling: %v", err))
	}
	return rand.New(rand.NewChaCha8(seed))
}

// SelectPath picks a path for spec from relays (the consensus entries).
// Failures wrap ErrNoPath and say what the consensus lacks.
func SelectPath(relays []directory.RouterStatus, spec PathSpec, rng *rand.Rand) (*Path, error) {
	if spec.Mode != ModeAnonymous && spec.Mode != ModeConfidential {
		return nil, fmt.Errorf("client: path: unknown circuit mode %q", spec.Mode)
	}
	if spec.Guard == nil {
		return nil, fmt.Errorf("%w: no guard", ErrNoPath)
	}
	if spec.NLayers <= 0 {
		return nil, fmt.Errorf("%w: model %s has no layers in the catalog", ErrNoPath, spec.Model)
	}
	p := &Path{Hops: []*directory.RouterStatus{spec.Guard}, Mode: spec.Mode}
	if spec.Mode == ModeConfidential {
		stages, err := selectStages(relays, spec, rng)
		if err != nil {
			return nil, err
		}
		p.Stages = stages
		for _, st := range stages {
			p.Hops = append(p.Hops, st.Dealer, st.A, st.B)
		}
		return p, nil
	}

	used := newExclusion(spec.Avoid)
	used.add(spec.Guard)
	for first := 0; first < spec.NLayers; {
		var cands []*directory.RouterStatus
		for i := range relays {
			r := &relays[i]
			if usable(r, directory.FlagCompute) && r.Compute != nil && r.Compute.Model == spec.Model &&
				r.Compute.Layers.First == first && r.Compute.Layers.Last > first &&
				r.Compute.Layers.Last <= spec.NLayers && used.allows(r) {
				cands = append(cands, r)
			}
		}
		if len(cands) == 0 {
			return nil, fmt.Errorf("%w: no usable compute relay for model %s starting at layer %d", ErrNoPath, spec.Model, first)
		}
		r := weightedPick(cands, rng)
		p.Hops = append(p.Hops, r)
		p.Shards = append(p.Shards, r.Compute.Layers)
		used.add(r)
		first = r.Compute.Layers.Last
	}
	return p, nil
}

// selectStages picks the stages of a confidential path (spec/10 §7).
//
// A stage range is *servable* when at least two of its party relays and a
// dealer of the model can form a stage with the guard: distinct, and no two
// of the four in one network or declared family. Only servable ranges that
// end at N or where another servable range starts are chosen, so a range is
// never picked into a dead end. Parties of different stages never coincide
// (a relay advertises one mpc range), but one dealer may suit several
// stages, and a relay may be both a party and a dealer. So ranges and
// parties are drawn in layer order, each pair only if the stages so far,
// plus as many as are still needed to reach N, can get distinct dealers (a
// bipartite matching); then every stage draws its dealer among those that
// leave the later stages one. Should the later stages still find no
// dealer, the draw is repeated a few times before giving up.
func selectStages(relays []directory.RouterStatus, spec PathSpec, rng *rand.Rand) ([]Stage, error) {
	n, model := spec.NLayers, spec.Model
	guard := newCand(spec.Guard)
	excluded := map[keys.Fingerprint]bool{guard.r.Fingerprint: true}
	for _, fp := range spec.Avoid {
		excluded[fp] = true
	}
	byRange := map[directory.LayerRange][]cand{}
	var dealers []cand
	parties := 0
	for i := range relays {
		r := &relays[i]
		if excluded[r.Fingerprint] {
			continue
		}
		c := newCand(r)
		if !guard.apart(c) {
			continue
		}
		if m := r.MPC; m != nil && usable(r, directory.FlagMPC) && m.Model == model &&
			m.Layers.First >= 0 && m.Layers.First < m.Layers.Last && m.Layers.Last <= n {
			byRange[m.Layers] = append(byRange[m.Layers], c)
			parties++
		}
		if d := r.Dealer; d != nil && usable(r, directory.FlagDealer) && d.Model == model {
			dealers = append(dealers, c)
		}
	}
	const usableNote = "Running, Valid, flagged, not avoided, and not in the guard's network or family"
	if len(dealers) == 0 {
		return nil, fmt.Errorf("%w: confidential: no usable dealer relay for model %s (%s)", ErrNoPath, model, usableNote)
	}
	if parties == 0 {
		return nil, fmt.Errorf("%w: confidential: no usable party (mpc) relay for model %s (%s)", ErrNoPath, model, usableNote)
	}

	// Servable ranges by first layer, and from which boundaries (and in
	// how few stages at least) they lead on to n.
	sel := &stageSelector{byRange: byRange, dealers: dealers, starts: map[int][]directory.LayerRange{}, toEnd: map[int]int{n: 0}, n: n}
	for lr := range byRange {
		if sel.servable(lr) {
			sel.starts[lr.First] = append(sel.starts[lr.First], lr)
		}
	}
	for _, rs := range sel.starts {
		slices.SortFunc(rs, func(a, b directory.LayerRange) int { return a.Last - b.Last })
	}
	for l := n - 1; l >= 0; l-- {
		for _, lr := range sel.starts[l] {
			if k, ok := sel.toEnd[lr.Last]; ok && (sel.toEnd[l] == 0 || k+1 < sel.toEnd[l]) {
				sel.toEnd[l] = k + 1
			}
		}
	}
	if _, ok := sel.toEnd[0]; !ok {
		return nil, noTiling(byRange, sel.starts, model, n)
	}

	const attempts = 4
	var err error
	for range attempts {
		var stages []Stage
		if stages, err = sel.draw(rng); err == nil {
			return stages, nil
		}
	}
	return nil, fmt.Errorf("%w: confidential: model %s: %v", ErrNoPath, model, err)
}

// stageSelector holds what selectStages found usable.
type stageSelector struct {
	byRange map[directory.LayerRange][]cand
	dealers []cand
	starts  map[int][]directory.LayerRange // servable ranges by first layer
	toEnd   map[int]int                    // boundary → least stages on to n; absent: none
	n       int
}

// draw draws one assignment: ranges and parties in layer order, then the
// dealers. Every weighted draw is by rejection (draw among all, drop a
// candidate that does not fit, draw again), which picks with the same
// weights among the candidates that fit and usually tests only one.
func (s *stageSelector) draw(rng *rand.Rand) ([]Stage, error) {
	var stages []Stage
	var fixed [][]cand                    // dealers that may serve each stage drawn
	onPath := map[keys.Fingerprint]bool{} // parties drawn
	type choice struct {
		lr directory.LayerRange
		a  cand
	}
	for first := 0; first < s.n; {
		var cs []choice
		for _, lr := range s.starts[first] {
			if _, ok := s.toEnd[lr.Last]; ok {
				for _, a := range s.byRange[lr] {
					cs = append(cs, choice{lr, a})
				}
			}
		}
		fits := func(lr directory.LayerRange, a, b cand) bool {
			return a.apart(b) && s.assignable(fixed, onPath, a, b, s.toEnd[lr.Last])
		}
		// The range and A, weighted by A's weight among the parties
		// that have a partner; then B.
		c, ok := pickWhere(cs, func(c choice) uint64 { return weight(c.a.r) }, rng, func(c choice) bool {
			return slices.ContainsFunc(s.byRange[c.lr], func(b cand) bool { return fits(c.lr, c.a, b) })
		})
		if !ok {
			return nil, fmt.Errorf("no stage starting at layer %d has two party relays that leave every stage a distinct "+
				"dealer apart from its parties (%d usable dealers)", first, len(s.dealers))
		}
		b, _ := pickWhere(s.byRange[c.lr], candWeight, rng, func(b cand) bool { return fits(c.lr, c.a, b) })
		stages = append(stages, Stage{Range: c.lr, A: c.a.r, B: b.r})
		fixed = append(fixed, s.dealersApart(c.a, b))
		onPath[c.a.r.Fingerprint], onPath[b.r.Fingerprint] = true, true
		first = c.lr.Last
	}
	// Every stage draws its dealer among those that leave the later stages
	// a distinct one; the last pair was drawn only if a complete
	// assignment exists, so no stage is left without.
	taken := maps.Clone(onPath)
	for i := range stages {
		d, ok := pickWhere(fixed[i], candWeight, rng, func(d cand) bool {
			if taken[d.r.Fingerprint] {
				return false
			}
			taken[d.r.Fingerprint] = true
			defer delete(taken, d.r.Fingerprint)
			return matchable(fixed[i+1:], taken)
		})
		if !ok {
			return nil, fmt.Errorf("stage %d has no dealer left", i+1)
		}
		stages[i].Dealer = d.r
		taken[d.r.Fingerprint] = true
	}
	return stages, nil
}

// servable reports whether range lr has two parties and a dealer that can
// form a stage by themselves (with the guard, already accounted for).
func (s *stageSelector) servable(lr directory.LayerRange) bool {
	ps := s.byRange[lr]
	for _, a := range ps {
		for _, b := range ps {
			if a.apart(b) && slices.ContainsFunc(s.dealers, func(d cand) bool { return a.apart(d) && b.apart(d) }) {
				return true
			}
		}
	}
	return false
}

// assignable reports whether, with parties a and b for the next stage, the
// stages drawn (whose dealer candidates are fixed), this one and more
// further stages can each get a distinct dealer: apart from its parties
// (any, for a stage not yet drawn) and not a party on the circuit (onPath,
// a, b).
func (s *stageSelector) assignable(fixed [][]cand, onPath map[keys.Fingerprint]bool, a, b cand, more int) bool {
	cands := append(slices.Clip(fixed), s.dealersApart(a, b))
	for range more {
		cands = append(cands, s.dealers)
	}
	onPath[a.r.Fingerprint], onPath[b.r.Fingerprint] = true, true
	defer delete(onPath, a.r.Fingerprint)
	defer delete(onPath, b.r.Fingerprint)
	return matchable(cands, onPath)
}

// dealersApart returns the dealers apart from both parties of a stage.
func (s *stageSelector) dealersApart(a, b cand) []cand {
	var out []cand
	for _, d := range s.dealers {
		if a.apart(d) && b.apart(d) {
			out = append(out, d)
		}
	}
	return out
}

// matchable reports whether every stage can get a distinct dealer from its
// candidates, none of them taken (Kuhn's augmenting paths).
func matchable(cands [][]cand, taken map[keys.Fingerprint]bool) bool {
	owner := map[keys.Fingerprint]int{}
	var try func(i int, seen map[keys.Fingerprint]bool) bool
	try = func(i int, seen map[keys.Fingerprint]bool) bool {
		for _, d := range cands[i] {
			fp := d.r.Fingerprint
			if taken[fp] || seen[fp] {
				continue
			}
			seen[fp] = true
			if j, ok := owner[fp]; !ok || try(j, seen) {
				owner[fp] = i
				return true
			}
		}
		return false
	}
	for i := range cands {
		if !try(i, map[keys.Fingerprint]bool{}) {
			return false
		}
	}
	return true
}

// cand is a relay with its networks (netsOf), computed once.
type cand struct {
	r    *directory.RouterStatus
	nets []string
}

func newCand(r *directory.RouterStatus) cand { return cand{r, netsOf(r)} }

// apart reports whether two relays may serve in one confidential stage (or
// one with the guard): distinct, not in one /16 (/32 IPv6) network, not a
// declared family.
func (x cand) apart(y cand) bool {
	if x.r.Fingerprint == y.r.Fingerprint || sameFamily(x.r, y.r) {
		return false
	}
	for _, n := range x.nets {
		if slices.Contains(y.nets, n) {
			return false
		}
	}
	return true
}

// noTiling explains why no sequence of servable stages covers [0, n): the
// furthest layer servable stages reach from 0, and what the consensus
// offers at that layer.
func noTiling(byRange map[directory.LayerRange][]cand, starts map[int][]directory.LayerRange, model string, n int) error {
	reach := map[int]bool{0: true}
	furthest := 0
	for l := 0; l < n; l++ {
		if !reach[l] {
			continue
		}
		furthest = l
		for _, lr := range starts[l] {
			reach[lr.Last] = true
		}
	}
	var there []string
	for lr, ps := range byRange {
		if lr.First == furthest {
			there = append(there, fmt.Sprintf("[%d,%d) with %d usable parties", lr.First, lr.Last, len(ps)))
		}
	}
	slices.Sort(there)
	what := "no usable party relay advertises a stage starting there"
	if len(there) > 0 {
		what = fmt.Sprintf("the consensus offers %v, but none has two party relays and a dealer that are distinct and in "+
			"different networks and families, or leads on to layer %d", there, n)
	}
	return fmt.Errorf("%w: confidential: model %s: no stage usable from layer %d toward layer %d: %s", ErrNoPath, model, furthest, n, what)
}

// pickWhere draws an element of xs weighted by w among those that satisfy
// ok, testing ok only on the elements drawn.
func pickWhere[T any](xs []T, w func(T) uint64, rng *rand.Rand, ok func(T) bool) (T, bool) {
	xs = slices.Clone(xs)
	for len(xs) > 0 {
		var total uint64
		for _, x := range xs {
			total += w(x)
		}
		r, i := rng.Uint64N(total), 0
		for ; i < len(xs)-1; i++ {
			if r < w(xs[i]) {
				break
			}
			r -= w(xs[i])
		}
		if ok(xs[i]) {
			return xs[i], true
		}
		xs = slices.Delete(xs, i, i+1)
	}
	var zero T
	return zero, false
}

func candWeight(c cand) uint64 { return weight(c.r) }

// usable reports whether r may serve in role: Running, Valid, flagged, and
// reachable only at IP literals or, for the transport onion, v3 onion
// addresses (the network rules need addresses; parsers refuse names,
// entries built otherwise are checked here too).
func usable(r *directory.RouterStatus, role directory.Flag) bool {
	if !r.HasFlag(directory.FlagRunning) || !r.HasFlag(directory.FlagValid) || !r.HasFlag(role) || len(r.Transports) == 0 ||
		r.HasFlag(directory.FlagBadCompute) { // spec/11 §5.3: in no position
		return false
	}
	for _, t := range r.Transports {
		host, _, err := net.SplitHostPort(t.Addr)
		if err != nil {
			return false
		}
		if t.Name == directory.OnionTransport {
			if _, err := onionaddr.Parse(host); err != nil {
				return false
			}
		} else if net.ParseIP(host) == nil {
			return false
		}
	}
	return true
}

func weightedPick(cands []*directory.RouterStatus, rng *rand.Rand) *directory.RouterStatus {
	var total uint64
	for _, c := range cands {
		total += weight(c)
	}
	x := rng.Uint64N(total)
	for _, c := range cands {
		if w := weight(c); x < w {
			return c
		} else {
			x -= w
		}
	}
	return cands[len(cands)-1]
}

// weight is a relay's selection weight (spec/08-client-api.md §10).
func weight(r *directory.RouterStatus) uint64 { return weightOf(r) }

// weightOf is weight's rule. It is a variable only so that a test can put
// the old rule (the claimed capacity) back and show that
// TestClaimedCapacityIgnored catches it.
var weightOf = consensusWeight

// DefaultWeight is the weight of an entry without a consensus weight: every
// relay of a method-1 consensus (which then all weigh the same), or an
// entry built from a descriptor. It equals the authorities' default
// weight-unmeasured.
const DefaultWeight = 20

// consensusWeight returns the relay's consensus weight (spec/04 §7.4:
// measured by the authorities, bounded by the claimed capacity and clipped
// relative to the network), or DefaultWeight when the entry has none.
func consensusWeight(r *directory.RouterStatus) uint64 {
	if r.Weight == 0 {
		return DefaultWeight
	}
	return min(r.Weight, directory.MaxWeight)
}

// weightedOrder returns fps (keys of byFP) in a random order drawn by
// weight without replacement: each next element is drawn with probability
// proportional to its weight among those left (Efraimidis and Spirakis:
// sort by Exp(1)/weight). Guard sampling uses it.
func weightedOrder(fps []string, byFP map[string]*directory.RouterStatus, rng *rand.Rand) []string {
	type keyed struct {
		fp  string
		key float64
	}
	ks := make([]keyed, len(fps))
	for i, fp := range fps {
		ks[i] = keyed{fp, rng.ExpFloat64() / float64(weight(byFP[fp]))}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.fp
	}
	return out
}

// exclusion tracks what an anonymous path already uses: relays, networks,
// families.
type exclusion struct {
	fps   map[keys.Fingerprint]bool
	nets  map[string]bool
	chose []*directory.RouterStatus
}

func newExclusion(avoid []keys.Fingerprint) *exclusion {
	e := &exclusion{fps: map[keys.Fingerprint]bool{}, nets: map[string]bool{}}
	for _, fp := range avoid {
		e.fps[fp] = true
	}
	return e
}

func (e *exclusion) add(r *directory.RouterStatus) {
	e.fps[r.Fingerprint] = true
	for _, n := range netsOf(r) {
		e.nets[n] = true
	}
	e.chose = append(e.chose, r)
}

func (e *exclusion) allows(r *directory.RouterStatus) bool {
	if e.fps[r.Fingerprint] {
		return false
	}
	for _, n := range netsOf(r) {
		if e.nets[n] {
			return false
		}
	}
	for _, c := range e.chose {
		if sameFamily(c, r) {
			return false
		}
	}
	return true
}

// netsOf returns the /16 (IPv4) or /32 (IPv6) networks of a relay's
// addresses. Loopback addresses are exempt so a local testnet, where every
// relay shares 127.0.0.1, can build paths; nothing else is. A relay
// reachable only at onion addresses has no known location: all such relays
// count as one network, "onion", so a path holds at most one of them where
// networks must differ (one operator can run any number of onion services).
func netsOf(r *directory.RouterStatus) []string {
	var out []string
	located, onion := false, false
	for _, t := range r.Transports {
		host, _, err := net.SplitHostPort(t.Addr)
		if err != nil {
			continue
		}
		onion = onion || t.Name == directory.OnionTransport
		ip := net.ParseIP(host)
		located = located || ip != nil
		if ip == nil || ip.IsLoopback() {
			continue
		}
		var n string
		if v4 := ip.To4(); v4 != nil {
			n = fmt.Sprintf("4:%d.%d", v4[0], v4[1])
		} else {
			n = fmt.Sprintf("6:%x", []byte(ip.To16()[:4]))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if onion && !located {
		return []string{"onion"}
	}
	return out
}

// sameFamily reports whether a and b declare each other as family. As in
// Tor, a family relation counts only when both sides declare it.
func sameFamily(a, b *directory.RouterStatus) bool {
	return slices.Contains(a.Family, b.Fingerprint) && slices.Contains(b.Family, a.Fingerprint)
}
