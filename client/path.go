package client

// Path selection (spec/08-client-api.md §10): a circuit for one model is
//
//	guard → A → B → S1 → … → Sn        (MPC entry, the default)
//	guard → S0 → S1 → … → Sn           (embed=plain, debugging only)
//
// chosen from the verified consensus. Compute relays are weighted by their
// advertised capacity; no relay is used twice; no two relays share a /16 (or
// a /32 IPv6 prefix) or a declared family.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
)

// ErrNoPath is returned when the consensus cannot supply a usable path.
var ErrNoPath = errors.New("client: no usable path")

// Path is a chosen circuit path: Hops[0] is the guard.
type Path struct {
	Hops []*directory.RouterStatus
	// MPC reports whether Hops[1] and Hops[2] are the MPC pair A and B.
	MPC bool
	// Shards[i] is the layer range of the i-th compute hop after the pair
	// (or after the guard in plain mode).
	Shards []directory.LayerRange
}

// PathSpec says what a path must provide.
type PathSpec struct {
	Model   string
	NLayers int
	// MPC selects the MPC entry stage (block 0 in the pair, shards from layer 1).
	MPC bool
	// Guard is the guard to use (from the guard set).
	Guard *directory.RouterStatus
	// Avoid lists relays that must not appear (failed ones).
	Avoid []keys.Fingerprint
}

// SelectPath picks a path for spec from relays (the consensus entries).
func SelectPath(relays []directory.RouterStatus, spec PathSpec, rng *rand.Rand) (*Path, error) {
	if spec.Guard == nil {
		return nil, fmt.Errorf("%w: no guard", ErrNoPath)
	}
	if spec.NLayers <= 0 {
		return nil, fmt.Errorf("%w: model %s has no layers in the catalog", ErrNoPath, spec.Model)
	}
	p := &Path{Hops: []*directory.RouterStatus{spec.Guard}, MPC: spec.MPC}
	used := newExclusion(spec.Avoid)
	used.add(spec.Guard)

	first := 0
	if spec.MPC {
		a, b, err := pickPair(relays, spec.Model, used, rng)
		if err != nil {
			return nil, err
		}
		p.Hops = append(p.Hops, a, b)
		used.add(a)
		used.add(b)
		first = 1
	}
	for first < spec.NLayers {
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

func pickPair(relays []directory.RouterStatus, model string, used *exclusion, rng *rand.Rand) (a, b *directory.RouterStatus, err error) {
	byFP := make(map[keys.Fingerprint]*directory.RouterStatus, len(relays))
	for i := range relays {
		byFP[relays[i].Fingerprint] = &relays[i]
	}
	var cands []*directory.RouterStatus
	for i := range relays {
		r := &relays[i]
		if !usable(r, directory.FlagMPC) || r.MPC == nil || r.MPC.Party != "A" || r.MPC.Model != model || !used.allows(r) {
			continue
		}
		pb := byFP[r.MPC.Partner]
		if pb == nil || !usable(pb, directory.FlagMPC) || pb.MPC == nil || pb.MPC.Party != "B" ||
			pb.MPC.Partner != r.Fingerprint || pb.MPC.Model != model || !used.allows(pb) || sameNet(r, pb) || sameFamily(r, pb) {
			continue
		}
		cands = append(cands, r)
	}
	if len(cands) == 0 {
		return nil, nil, fmt.Errorf("%w: no usable MPC pair for model %s", ErrNoPath, model)
	}
	a = weightedPick(cands, rng)
	return a, byFP[a.MPC.Partner], nil
}

func usable(r *directory.RouterStatus, role directory.Flag) bool {
	return r.HasFlag(directory.FlagRunning) && r.HasFlag(directory.FlagValid) && r.HasFlag(role)
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

// weight is a relay's selection weight: its advertised session capacity,
// at least 1 and capped so one relay cannot claim the whole network.
func weight(r *directory.RouterStatus) uint64 {
	return min(max(r.Capacity.Sessions, 1), 1<<16)
}

// exclusion tracks what a path already uses: relays, networks, families.
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
// relay shares 127.0.0.1, can build paths; nothing else is.
func netsOf(r *directory.RouterStatus) []string {
	var out []string
	for _, t := range r.Transports {
		host, _, err := net.SplitHostPort(t.Addr)
		if err != nil {
			continue
		}
		ip := net.ParseIP(host)
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
	return out
}

func sameNet(a, b *directory.RouterStatus) bool {
	for _, n := range netsOf(a) {
		if slices.Contains(netsOf(b), n) {
			return true
		}
	}
	return false
}

// sameFamily reports whether a and b declare each other as family. As in
// Tor, a family relation counts only when both sides declare it.
func sameFamily(a, b *directory.RouterStatus) bool {
	return slices.Contains(a.Family, b.Fingerprint) && slices.Contains(b.Family, a.Fingerprint)
}
