package client

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/directory/dirtest"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/transports/onionaddr"
)

// Consensus fixtures. Every relay is Running and Valid unless a case says
// otherwise; fingerprints are derived from the relay's index.

// status returns a Running, Valid entry with flags at addr, capacity 10
// and a fingerprint made of n (guard_test uses it too).
func status(n int, addr string, flags []directory.Flag) directory.RouterStatus {
	var fp keys.Fingerprint
	fp[0], fp[1] = byte(n>>8), byte(n)
	return directory.RouterStatus{
		Fingerprint: fp,
		Transports:  []directory.Transport{{Name: "tcp", Addr: addr}},
		Flags:       append([]directory.Flag{directory.FlagRunning, directory.FlagValid}, flags...),
		Capacity:    directory.Capacity{Sessions: 10},
	}
}

type fixture func(r *directory.RouterStatus)

func guardR() fixture { return flagged(directory.FlagGuard) }

func flagged(f directory.Flag) fixture {
	return func(r *directory.RouterStatus) { r.Flags = append(r.Flags, f) }
}

func compute(model string, first, last int) fixture {
	return func(r *directory.RouterStatus) {
		r.Flags = append(r.Flags, directory.FlagCompute)
		r.Roles = append(r.Roles, directory.RoleCompute)
		r.Compute = &directory.ComputeInfo{Model: model, Layers: directory.LayerRange{First: first, Last: last}}
	}
}

func party(model string, first, last int) fixture {
	return func(r *directory.RouterStatus) {
		r.Flags = append(r.Flags, directory.FlagMPC)
		r.Roles = append(r.Roles, directory.RoleMPC)
		r.MPC = &directory.MPCInfo{Model: model, Layers: directory.LayerRange{First: first, Last: last}}
	}
}

func dealer(model string) fixture {
	return func(r *directory.RouterStatus) {
		r.Flags = append(r.Flags, directory.FlagDealer)
		r.Roles = append(r.Roles, directory.RoleDealer)
		r.Dealer = &directory.DealerInfo{Model: model}
	}
}

// weighted sets the consensus weight (spec/04 §7.4).
func weighted(w uint64) fixture {
	return func(r *directory.RouterStatus) { r.Weight = w }
}

// notRunning drops the Running flag.
func notRunning() fixture {
	return func(r *directory.RouterStatus) {
		r.Flags = slices.DeleteFunc(r.Flags, func(f directory.Flag) bool { return f == directory.FlagRunning })
	}
}

type relaySpec struct {
	name string
	addr string // host:port, or a bare IP (port 9001 added)
	fx   []fixture
}

func rel(name, addr string, fx ...fixture) relaySpec { return relaySpec{name, addr, fx} }

type network struct {
	rs     []directory.RouterStatus
	byName map[string]*directory.RouterStatus
}

func build(t testing.TB, specs []relaySpec, families ...[]string) *network {
	t.Helper()
	n := &network{byName: map[string]*directory.RouterStatus{}}
	for i, s := range specs {
		addr := s.addr
		if !strings.Contains(addr, ":") || strings.Count(addr, ":") > 1 && !strings.HasPrefix(addr, "[") {
			if strings.Contains(addr, ":") {
				addr = "[" + addr + "]"
			}
			addr += ":9001"
		}
		r := status(1000+i, addr, nil)
		r.Nickname = s.name
		for _, f := range s.fx {
			f(&r)
		}
		slices.Sort(r.Flags)
		n.rs = append(n.rs, r)
	}
	for i := range n.rs {
		n.byName[n.rs[i].Nickname] = &n.rs[i]
	}
	if len(n.byName) != len(specs) {
		t.Fatal("duplicate relay names in fixture")
	}
	for _, fam := range families {
		for _, a := range fam {
			for _, b := range fam {
				if a != b {
					n.get(t, a).Family = append(n.get(t, a).Family, n.get(t, b).Fingerprint)
				}
			}
		}
	}
	return n
}

func (n *network) get(t testing.TB, name string) *directory.RouterStatus {
	t.Helper()
	r := n.byName[name]
	if r == nil {
		t.Fatalf("no relay %q in fixture", name)
	}
	return r
}

func (n *network) name(fp keys.Fingerprint) string {
	for _, r := range n.rs {
		if r.Fingerprint == fp {
			return r.Nickname
		}
	}
	return fp.String()
}

// net16 is the test's own reading of the network rule: the /16 of an IPv4
// address, the /32 of an IPv6 one, "" for loopback (exempt).
func net16(t testing.TB, addr string) string {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatalf("fixture address %q: %v", addr, err)
	}
	ip := ap.Addr().Unmap()
	if ip.IsLoopback() {
		return ""
	}
	bits := 16
	if ip.Is6() {
		bits = 32
	}
	return netip.PrefixFrom(ip, bits).Masked().String()
}

// together reports whether two relays may not share a stage (or a stage
// and its guard): same relay, same network, or mutually declared family.
func together(t testing.TB, x, y *directory.RouterStatus) string {
	t.Helper()
	if x.Fingerprint == y.Fingerprint {
		return "the same relay"
	}
	for _, a := range x.Transports {
		for _, b := range y.Transports {
			if n := net16(t, a.Addr); n != "" && n == net16(t, b.Addr) {
				return "one network " + n
			}
		}
	}
	if slices.Contains(x.Family, y.Fingerprint) && slices.Contains(y.Family, x.Fingerprint) {
		return "one family"
	}
	return ""
}

// checkConfidential checks everything spec/10 §2 and §7 require of a
// confidential path.
func checkConfidential(t testing.TB, n *network, p *Path, spec PathSpec) {
	t.Helper()
	if p.Mode != ModeConfidential || len(p.Shards) != 0 || len(p.Stages) == 0 || len(p.Hops) != 1+3*len(p.Stages) || p.Hops[0] != spec.Guard {
		t.Fatalf("path shape: mode %q, %d hops, %d stages, %d shards", p.Mode, len(p.Hops), len(p.Stages), len(p.Shards))
	}
	next := 0
	seen := map[keys.Fingerprint]bool{}
	for _, h := range p.Hops {
		if seen[h.Fingerprint] {
			t.Fatalf("%s twice on the circuit", n.name(h.Fingerprint))
		}
		seen[h.Fingerprint] = true
		if slices.Contains(spec.Avoid, h.Fingerprint) {
			t.Fatalf("avoided relay %s on the circuit", n.name(h.Fingerprint))
		}
	}
	for i, st := range p.Stages {
		if p.Hops[3*i+1] != st.Dealer || p.Hops[3*i+2] != st.A || p.Hops[3*i+3] != st.B {
			t.Fatalf("stage %d is not at hops D=%d A=%d B=%d", i+1, 3*i+1, 3*i+2, 3*i+3)
		}
		if st.Range.First != next || st.Range.Last <= st.Range.First {
			t.Fatalf("stage %d range %v does not continue at layer %d", i+1, st.Range, next)
		}
		next = st.Range.Last
		for _, x := range []*directory.RouterStatus{st.A, st.B} {
			if x.MPC == nil || x.MPC.Model != spec.Model || x.MPC.Layers != st.Range || !x.HasFlag(directory.FlagMPC) || !x.HasFlag(directory.FlagRunning) {
				t.Fatalf("stage %d party %s does not serve %v of %s", i+1, n.name(x.Fingerprint), st.Range, spec.Model)
			}
		}
		if d := st.Dealer; d.Dealer == nil || d.Dealer.Model != spec.Model || !d.HasFlag(directory.FlagDealer) || !d.HasFlag(directory.FlagRunning) {
			t.Fatalf("stage %d dealer %s does not deal %s", i+1, n.name(d.Fingerprint), spec.Model)
		}
		members := []*directory.RouterStatus{spec.Guard, st.Dealer, st.A, st.B}
		for j, x := range members {
			for _, y := range members[j+1:] {
				if why := together(t, x, y); why != "" {
					t.Fatalf("stage %d: %s and %s are %s", i+1, n.name(x.Fingerprint), n.name(y.Fingerprint), why)
				}
			}
		}
	}
	if next != spec.NLayers {
		t.Fatalf("stages end at layer %d, want %d", next, spec.NLayers)
	}
}

// stageNames renders a path's stages as "[0,2) D=d1 A=a B=b; ...".
func stageNames(n *network, p *Path) string {
	var parts []string
	for _, st := range p.Stages {
		parts = append(parts, fmt.Sprintf("[%d,%d) D=%s A=%s B=%s", st.Range.First, st.Range.Last,
			n.name(st.Dealer.Fingerprint), n.name(st.A.Fingerprint), n.name(st.B.Fingerprint)))
	}
	return strings.Join(parts, "; ")
}

const seeds = 300

func TestSelectPathConfidential(t *testing.T) {
	g := rel("g", "10.0.0.1", guardR())
	cases := []struct {
		name     string
		relays   []relaySpec
		families [][]string
		nLayers  int
		avoid    []string
		// want: "" means every seed gives a valid path, else the error
		// (wrapping ErrNoPath) must mention it.
		want string
		// never lists relays no path may use; ranges lists the only
		// acceptable stage layouts (nil: any tiling).
		never  []string
		ranges []string
		// dealers, when set, lists the acceptable dealers of the stages,
		// in stage order.
		dealers [][]string
	}{
		{name: "one stage", nLayers: 5, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 5)), rel("b", "10.2.0.1", party("m", 0, 5)), rel("d", "10.3.0.1", dealer("m"))},
			ranges: []string{"[0,5)"}},
		{name: "two stages", nLayers: 5, relays: []relaySpec{g,
			rel("a1", "10.1.0.1", party("m", 0, 2)), rel("b1", "10.2.0.1", party("m", 0, 2)),
			rel("a2", "10.3.0.1", party("m", 2, 5)), rel("b2", "10.4.0.1", party("m", 2, 5)),
			rel("d1", "10.5.0.1", dealer("m")), rel("d2", "10.6.0.1", dealer("m"))},
			ranges: []string{"[0,2) [2,5)"}},
		{name: "three stages, one layer each", nLayers: 3, relays: []relaySpec{g,
			rel("a1", "10.1.0.1", party("m", 0, 1)), rel("b1", "10.2.0.1", party("m", 0, 1)),
			rel("a2", "10.3.0.1", party("m", 1, 2)), rel("b2", "10.4.0.1", party("m", 1, 2)),
			rel("a3", "10.5.0.1", party("m", 2, 3)), rel("b3", "10.6.0.1", party("m", 2, 3)),
			rel("d1", "10.7.0.1", dealer("m")), rel("d2", "10.8.0.1", dealer("m")), rel("d3", "10.9.0.1", dealer("m"))},
			ranges: []string{"[0,1) [1,2) [2,3)"}},
		{name: "alternative tilings", nLayers: 5, relays: []relaySpec{g,
			rel("a1", "10.1.0.1", party("m", 0, 2)), rel("b1", "10.2.0.1", party("m", 0, 2)),
			rel("a2", "10.3.0.1", party("m", 2, 5)), rel("b2", "10.4.0.1", party("m", 2, 5)),
			rel("w1", "10.5.0.1", party("m", 0, 5)), rel("w2", "10.6.0.1", party("m", 0, 5)),
			rel("d1", "10.7.0.1", dealer("m")), rel("d2", "10.8.0.1", dealer("m"))},
			ranges: []string{"[0,2) [2,5)", "[0,5)"}},
		{name: "a range leading nowhere is not chosen", nLayers: 5, relays: []relaySpec{g,
			rel("a1", "10.1.0.1", party("m", 0, 2)), rel("b1", "10.2.0.1", party("m", 0, 2)),
			rel("w1", "10.5.0.1", party("m", 0, 5)), rel("w2", "10.6.0.1", party("m", 0, 5)),
			rel("d1", "10.7.0.1", dealer("m"))},
			never: []string{"a1", "b1"}, ranges: []string{"[0,5)"}},
		{name: "a range with one party is not a stage", nLayers: 5, relays: []relaySpec{g,
			rel("lone", "10.1.0.1", party("m", 0, 2)), rel("a2", "10.3.0.1", party("m", 2, 5)), rel("b2", "10.4.0.1", party("m", 2, 5)),
			rel("w1", "10.5.0.1", party("m", 0, 5)), rel("w2", "10.6.0.1", party("m", 0, 5)), rel("d1", "10.7.0.1", dealer("m"))},
			never: []string{"lone", "a2", "b2"}, ranges: []string{"[0,5)"}},
		{name: "stage past the model and other models are ignored", nLayers: 5, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 5)), rel("b", "10.2.0.1", party("m", 0, 5)),
			rel("long1", "10.3.0.1", party("m", 0, 6)), rel("long2", "10.4.0.1", party("m", 0, 6)),
			rel("x1", "10.5.0.1", party("x", 0, 5)), rel("x2", "10.6.0.1", party("x", 0, 5)),
			rel("dx", "10.7.0.1", dealer("x")), rel("d", "10.8.0.1", dealer("m")),
			rel("c", "10.9.0.1", compute("m", 0, 5))},
			never: []string{"long1", "long2", "x1", "x2", "dx", "c"}},
		// c1 is a party and a dealer. Two stages need two dealers, so c1
		// must deal: with c1 as a party only dx would be left.
		{name: "a relay both party and dealer serves one role per circuit", nLayers: 4, relays: []relaySpec{g,
			rel("a1", "10.1.0.1", party("m", 0, 2)), rel("b1", "10.2.0.1", party("m", 0, 2)), rel("c1", "10.9.0.1", party("m", 0, 2), dealer("m")),
			rel("a2", "10.3.0.1", party("m", 2, 4)), rel("b2", "10.4.0.1", party("m", 2, 4)), rel("dx", "10.5.0.1", dealer("m"))},
			ranges: []string{"[0,2) [2,4)"}, dealers: [][]string{{"c1", "dx"}, {"dx", "c1"}}},
		// d2 shares a2's /16, so only d1 can deal stage 2 and stage 1
		// must take d2 although d1 would suit it too.
		{name: "dealers are matched across stages", nLayers: 4, relays: []relaySpec{g,
			rel("a1", "10.1.0.1", party("m", 0, 2)), rel("b1", "10.2.0.1", party("m", 0, 2)),
			rel("a2", "10.3.0.1", party("m", 2, 4)), rel("b2", "10.4.0.1", party("m", 2, 4)),
			rel("d1", "10.5.0.1", dealer("m")), rel("d2", "10.3.9.9", dealer("m"))},
			dealers: [][]string{{"d2", "d1"}}},
		{name: "loopback is exempt from the network rule (testnet)", nLayers: 2, relays: []relaySpec{rel("g", "127.0.0.1:7000", guardR()),
			rel("a", "127.0.0.1:7001", party("m", 0, 2)), rel("b", "127.0.0.1:7002", party("m", 0, 2)), rel("d", "127.0.0.1:7003", dealer("m"))}},
		{name: "cross-stage networks may repeat", nLayers: 4, relays: []relaySpec{g,
			rel("a1", "10.1.0.1", party("m", 0, 2)), rel("b1", "10.2.0.1", party("m", 0, 2)),
			rel("a2", "10.1.0.2", party("m", 2, 4)), rel("b2", "10.2.0.2", party("m", 2, 4)),
			rel("d1", "10.3.0.1", dealer("m")), rel("d2", "10.3.0.2", dealer("m"))}},

		// Failures name what is missing.
		{name: "no dealer", nLayers: 5, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 5)), rel("b", "10.2.0.1", party("m", 0, 5)), rel("dx", "10.3.0.1", dealer("x"))},
			want: "no usable dealer relay for model m"},
		{name: "no party", nLayers: 5, relays: []relaySpec{g,
			rel("c", "10.1.0.1", compute("m", 0, 5)), rel("d", "10.3.0.1", dealer("m"))},
			want: "no usable party (mpc) relay for model m"},
		{name: "parties not running", nLayers: 5, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 5), notRunning()), rel("b", "10.2.0.1", party("m", 0, 5), notRunning()), rel("d", "10.3.0.1", dealer("m"))},
			want: "no usable party (mpc) relay"},
		{name: "dealer without its flag", nLayers: 5, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 5)), rel("b", "10.2.0.1", party("m", 0, 5)),
			rel("d", "10.3.0.1", func(r *directory.RouterStatus) {
				dealer("m")(r)
				r.Flags = slices.DeleteFunc(r.Flags, func(f directory.Flag) bool { return f == directory.FlagDealer })
			})},
			want: "no usable dealer relay"},
		{name: "one party per range", nLayers: 5, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 5)), rel("b", "10.2.0.1", party("m", 0, 2)), rel("d", "10.3.0.1", dealer("m"))},
			want: "no stage usable from layer 0 toward layer 5: the consensus offers [[0,2) with 1 usable parties [0,5) with 1 usable parties]"},
		{name: "a gap in the layers", nLayers: 5, relays: []relaySpec{g,
			rel("a1", "10.1.0.1", party("m", 0, 2)), rel("b1", "10.2.0.1", party("m", 0, 2)),
			rel("a2", "10.3.0.1", party("m", 3, 5)), rel("b2", "10.4.0.1", party("m", 3, 5)), rel("d", "10.5.0.1", dealer("m"))},
			want: "no stage usable from layer 2 toward layer 5: no usable party relay advertises a stage starting there"},
		{name: "one dealer cannot serve two stages", nLayers: 4, relays: []relaySpec{g,
			rel("a1", "10.1.0.1", party("m", 0, 2)), rel("b1", "10.2.0.1", party("m", 0, 2)),
			rel("a2", "10.3.0.1", party("m", 2, 4)), rel("b2", "10.4.0.1", party("m", 2, 4)), rel("d", "10.5.0.1", dealer("m"))},
			want: "no stage starting at layer 0 has two party relays that leave every stage a distinct dealer apart from its parties (1 usable dealers)"},
		{name: "avoided party", nLayers: 5, avoid: []string{"b"}, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 5)), rel("b", "10.2.0.1", party("m", 0, 5)), rel("d", "10.3.0.1", dealer("m"))},
			want: "[0,5) with 1 usable parties"},
		{name: "avoided dealer", nLayers: 5, avoid: []string{"d"}, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 5)), rel("b", "10.2.0.1", party("m", 0, 5)), rel("d", "10.3.0.1", dealer("m"))},
			want: "no usable dealer relay"},
		{name: "a party known only by a DNS name is unusable", nLayers: 5, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 5)), rel("b", "relay.example.org:9001", party("m", 0, 5)), rel("d", "10.3.0.1", dealer("m"))},
			want: "[0,5) with 1 usable parties"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := build(t, c.relays, c.families...)
			spec := PathSpec{Model: "m", NLayers: c.nLayers, Mode: ModeConfidential, Guard: n.get(t, c.relays[0].name)}
			for _, a := range c.avoid {
				spec.Avoid = append(spec.Avoid, n.get(t, a).Fingerprint)
			}
			layouts := map[string]int{}
			for seed := range uint64(seeds) {
				p, err := SelectPath(n.rs, spec, rand.New(rand.NewPCG(seed, 7)))
				if c.want != "" {
					if !errors.Is(err, ErrNoPath) || !strings.Contains(err.Error(), c.want) {
						t.Fatalf("seed %d: got %v, want ErrNoPath mentioning %q", seed, err, c.want)
					}
					continue
				}
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				checkConfidential(t, n, p, spec)
				for _, h := range p.Hops {
					if slices.Contains(c.never, h.Nickname) {
						t.Fatalf("seed %d: %s used: %s", seed, h.Nickname, stageNames(n, p))
					}
				}
				var rs, ds []string
				for _, st := range p.Stages {
					rs = append(rs, fmt.Sprintf("[%d,%d)", st.Range.First, st.Range.Last))
					ds = append(ds, st.Dealer.Nickname)
				}
				if c.dealers != nil && !slices.ContainsFunc(c.dealers, func(w []string) bool { return slices.Equal(ds, w) }) {
					t.Fatalf("seed %d: dealers %v, want %v: %s", seed, ds, c.dealers, stageNames(n, p))
				}
				layouts[strings.Join(rs, " ")]++
			}
			if c.ranges != nil {
				for l := range layouts {
					if !slices.Contains(c.ranges, l) {
						t.Errorf("stage layout %s, want one of %v", l, c.ranges)
					}
				}
				for _, l := range c.ranges {
					if layouts[l] == 0 {
						t.Errorf("layout %s never chosen in %d paths (%v)", l, seeds, layouts)
					}
				}
			}
		})
	}
}

// TestSelectPathConfidentialApart: for every pair of roles in a stage (A
// and B, a party and its dealer, the guard and each of them), a relay in the
// same /16, /32 (IPv6) or declared family as another is never chosen with
// it; when no other relay is available, there is no path. Family counts
// only when both relays declare it.
func TestSelectPathConfidentialApart(t *testing.T) {
	g := rel("g", "10.0.0.1", guardR())
	cases := []struct {
		name     string
		relays   []relaySpec
		families [][]string
		want     string
		never    []string
		// pairsNever lists relay pairs that must never be in one stage.
		pairsNever [][2]string
		tweak      func(t *testing.T, n *network)
	}{
		{name: "A and B in one /16", relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.1.200.7", party("m", 0, 4)), rel("d", "10.3.0.1", dealer("m"))},
			want: "[0,4) with 2 usable parties"},
		{name: "A and B in one /16, a third party elsewhere", relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.1.200.7", party("m", 0, 4)), rel("c", "10.2.0.1", party("m", 0, 4)),
			rel("d", "10.3.0.1", dealer("m"))},
			pairsNever: [][2]string{{"a", "b"}}},
		{name: "A and B in one IPv6 /32", relays: []relaySpec{g,
			rel("a", "2001:db8:1::1", party("m", 0, 4)), rel("b", "2001:db8:ffff::2", party("m", 0, 4)), rel("d", "10.3.0.1", dealer("m"))},
			want: "[0,4) with 2 usable parties"},
		{name: "IPv4-mapped IPv6 is the IPv4 /16", relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "::ffff:10.1.9.9", party("m", 0, 4)), rel("d", "10.3.0.1", dealer("m"))},
			want: "[0,4) with 2 usable parties"},
		{name: "A and B in one family", families: [][]string{{"a", "b"}}, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.2.0.1", party("m", 0, 4)), rel("d", "10.3.0.1", dealer("m"))},
			want: "[0,4) with 2 usable parties"},
		{name: "family declared by one side only does not count", relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.2.0.1", party("m", 0, 4)), rel("d", "10.3.0.1", dealer("m"))},
			tweak: func(t *testing.T, n *network) { n.get(t, "b").Family = []keys.Fingerprint{n.get(t, "a").Fingerprint} }},
		{name: "party and dealer in one /16", relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.2.0.1", party("m", 0, 4)), rel("d", "10.1.5.5", dealer("m"))},
			want: "no stage usable from layer 0"},
		{name: "party and dealer in one /16, another dealer elsewhere", relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.2.0.1", party("m", 0, 4)),
			rel("dA", "10.1.5.5", dealer("m")), rel("dB", "10.2.5.5", dealer("m")), rel("d", "10.3.0.1", dealer("m"))},
			never: []string{"dA", "dB"}},
		{name: "party and dealer in one family", families: [][]string{{"b", "d"}}, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.2.0.1", party("m", 0, 4)), rel("d", "10.3.0.1", dealer("m"))},
			want: "no stage usable from layer 0"},
		{name: "party and dealer in one family, choices left", families: [][]string{{"b", "d"}}, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.2.0.1", party("m", 0, 4)), rel("c", "10.4.0.1", party("m", 0, 4)),
			rel("d", "10.3.0.1", dealer("m")), rel("e", "10.5.0.1", dealer("m"))},
			pairsNever: [][2]string{{"b", "d"}}},
		{name: "guard and party in one /16", relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.2.0.1", party("m", 0, 4)), rel("near", "10.0.77.1", party("m", 0, 4)),
			rel("d", "10.3.0.1", dealer("m"))},
			never: []string{"near"}},
		{name: "guard and dealer in one /16", relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.2.0.1", party("m", 0, 4)), rel("near", "10.0.77.1", dealer("m")),
			rel("d", "10.3.0.1", dealer("m"))},
			never: []string{"near"}},
		{name: "guard and party in one family", families: [][]string{{"g", "fam"}}, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.2.0.1", party("m", 0, 4)), rel("fam", "10.9.0.1", party("m", 0, 4)),
			rel("d", "10.3.0.1", dealer("m"))},
			never: []string{"fam"}},
		{name: "guard and dealer in one family", families: [][]string{{"g", "fam"}}, relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.2.0.1", party("m", 0, 4)), rel("fam", "10.9.0.1", dealer("m"))},
			want: "no usable dealer relay"},
		{name: "every dealer near the guard", relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.2.0.1", party("m", 0, 4)), rel("d", "10.0.3.3", dealer("m"))},
			want: "no usable dealer relay"},
		{name: "a second address counts too", relays: []relaySpec{g,
			rel("a", "10.1.0.1", party("m", 0, 4)), rel("b", "10.2.0.1", party("m", 0, 4), func(r *directory.RouterStatus) {
				r.Transports = append(r.Transports, directory.Transport{Name: "quic", Addr: "10.1.0.9:443"})
			}), rel("c", "10.4.0.1", party("m", 0, 4)), rel("d", "10.3.0.1", dealer("m"))},
			pairsNever: [][2]string{{"a", "b"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := build(t, c.relays, c.families...)
			if c.tweak != nil {
				c.tweak(t, n)
			}
			spec := PathSpec{Model: "m", NLayers: 4, Mode: ModeConfidential, Guard: n.get(t, "g")}
			for seed := range uint64(seeds) {
				p, err := SelectPath(n.rs, spec, rand.New(rand.NewPCG(seed, 11)))
				if c.want != "" {
					if !errors.Is(err, ErrNoPath) || !strings.Contains(err.Error(), c.want) {
						t.Fatalf("seed %d: got %v, want ErrNoPath mentioning %q", seed, err, c.want)
					}
					continue
				}
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				checkConfidential(t, n, p, spec)
				for _, st := range p.Stages {
					in := []string{st.Dealer.Nickname, st.A.Nickname, st.B.Nickname}
					for _, nv := range c.never {
						if slices.Contains(in, nv) {
							t.Fatalf("seed %d: %s chosen: %s", seed, nv, stageNames(n, p))
						}
					}
					for _, pr := range c.pairsNever {
						if slices.Contains(in, pr[0]) && slices.Contains(in, pr[1]) {
							t.Fatalf("seed %d: %s and %s in one stage: %s", seed, pr[0], pr[1], stageNames(n, p))
						}
					}
				}
			}
		})
	}
}

// TestSelectPathConfidentialAnyPair: A and B are not operator-declared: any
// two party relays of a range pair up, each as A and as B, and every dealer
// of the model deals.
func TestSelectPathConfidentialAnyPair(t *testing.T) {
	n := build(t, []relaySpec{rel("g", "10.0.0.1", guardR()),
		rel("p1", "10.1.0.1", party("m", 0, 3)), rel("p2", "10.2.0.1", party("m", 0, 3)),
		rel("p3", "10.3.0.1", party("m", 0, 3)), rel("p4", "10.4.0.1", party("m", 0, 3)),
		rel("d1", "10.5.0.1", dealer("m")), rel("d2", "10.6.0.1", dealer("m"))})
	spec := PathSpec{Model: "m", NLayers: 3, Mode: ModeConfidential, Guard: n.get(t, "g")}
	ordered := map[[2]string]int{}
	dealers := map[string]int{}
	for seed := range uint64(2000) {
		p, err := SelectPath(n.rs, spec, rand.New(rand.NewPCG(seed, 3)))
		if err != nil {
			t.Fatal(err)
		}
		checkConfidential(t, n, p, spec)
		st := p.Stages[0]
		ordered[[2]string{st.A.Nickname, st.B.Nickname}]++
		dealers[st.Dealer.Nickname]++
	}
	ps := []string{"p1", "p2", "p3", "p4"}
	for _, a := range ps {
		for _, b := range ps {
			if a != b && ordered[[2]string{a, b}] == 0 {
				t.Errorf("A=%s B=%s never chosen: %v", a, b, ordered)
			}
		}
	}
	if dealers["d1"] == 0 || dealers["d2"] == 0 {
		t.Errorf("dealers used: %v", dealers)
	}
}

// TestSelectPathConfidentialSameOperator: an operator running several
// relays declares them one family; over many seeds no two of them are ever
// in one stage, in any roles, although they are chosen often.
func TestSelectPathConfidentialSameOperator(t *testing.T) {
	op := []string{"op-a", "op-b", "op-c", "op-dealer"}
	n := build(t, []relaySpec{rel("g", "10.0.0.1", guardR()),
		// The operator's relays: three parties of the first range and a
		// dealer, in distinct /16s, with a large weight to be chosen
		// often.
		rel("op-a", "10.10.0.1", party("m", 0, 2), weighted(1000)), rel("op-b", "10.11.0.1", party("m", 0, 2), weighted(1000)),
		rel("op-c", "10.12.0.1", party("m", 0, 2), weighted(1000)), rel("op-dealer", "10.14.0.1", dealer("m"), weighted(1000)),
		// Everyone else.
		rel("a1", "10.1.0.1", party("m", 0, 2)), rel("b1", "10.2.0.1", party("m", 0, 2)),
		rel("a2", "10.3.0.1", party("m", 2, 4)), rel("b2", "10.4.0.1", party("m", 2, 4)),
		rel("d1", "10.5.0.1", dealer("m")), rel("d2", "10.6.0.1", dealer("m")),
	}, op)
	spec := PathSpec{Model: "m", NLayers: 4, Mode: ModeConfidential, Guard: n.get(t, "g")}
	used := map[string]int{}
	for seed := range uint64(3000) {
		p, err := SelectPath(n.rs, spec, rand.New(rand.NewPCG(seed, 99)))
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		checkConfidential(t, n, p, spec)
		for _, st := range p.Stages {
			k := 0
			for _, r := range []*directory.RouterStatus{st.Dealer, st.A, st.B} {
				if slices.Contains(op, r.Nickname) {
					k++
					used[r.Nickname]++
				}
			}
			if k > 1 {
				t.Fatalf("seed %d: the operator holds %d relays of one stage: %s", seed, k, stageNames(n, p))
			}
		}
	}
	for _, name := range op {
		if used[name] < 300 {
			t.Errorf("%s chosen %d times in 3000 paths; the test needs it often: %v", name, used[name], used)
		}
	}
}

// TestSelectPathConfidentialWeighted: parties and dealers are chosen in
// proportion to their consensus weight.
func TestSelectPathConfidentialWeighted(t *testing.T) {
	n := build(t, []relaySpec{rel("g", "10.0.0.1", guardR()),
		rel("big", "10.1.0.1", party("m", 0, 2), weighted(900)), rel("small1", "10.2.0.1", party("m", 0, 2), weighted(10)),
		rel("small2", "10.3.0.1", party("m", 0, 2), weighted(10)),
		rel("dbig", "10.4.0.1", dealer("m"), weighted(900)), rel("dsmall", "10.5.0.1", dealer("m"), weighted(10))})
	spec := PathSpec{Model: "m", NLayers: 2, Mode: ModeConfidential, Guard: n.get(t, "g")}
	count := map[string]int{}
	const runs = 2000
	for seed := range uint64(runs) {
		p, err := SelectPath(n.rs, spec, rand.New(rand.NewPCG(seed, 5)))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range p.Hops[1:] {
			count[h.Nickname]++
		}
	}
	// big is A in ~95% of paths, and B in most of the rest.
	if count["big"] < runs*9/10 || count["dbig"] < runs*9/10 || count["small1"] == 0 || count["dsmall"] == 0 {
		t.Errorf("choices %v", count)
	}
}

func TestSelectPathModes(t *testing.T) {
	n := build(t, []relaySpec{rel("g", "10.0.0.1", guardR()),
		rel("a", "10.1.0.1", party("m", 0, 2)), rel("b", "10.2.0.1", party("m", 0, 2)), rel("d", "10.3.0.1", dealer("m")),
		rel("c", "10.4.0.1", compute("m", 0, 2))})
	g := n.get(t, "g")
	rng := rand.New(rand.NewPCG(1, 1))
	if _, err := SelectPath(n.rs, PathSpec{Model: "m", NLayers: 2, Guard: g}, rng); err == nil || errors.Is(err, ErrNoPath) ||
		!strings.Contains(err.Error(), "unknown circuit mode") {
		t.Errorf("no mode: %v", err)
	}
	p, err := SelectPath(n.rs, PathSpec{Model: "m", NLayers: 2, Mode: ModeAnonymous, Guard: g}, rng)
	if err != nil || p.Mode != ModeAnonymous || len(p.Stages) != 0 || len(p.Hops) != 2 || p.Hops[1].Nickname != "c" {
		t.Errorf("anonymous: %+v %v", p, err)
	}
	p, err = SelectPath(n.rs, PathSpec{Model: "m", NLayers: 2, Mode: ModeConfidential, Guard: g}, rng)
	if err != nil || p.Mode != ModeConfidential || len(p.Shards) != 0 || len(p.Hops) != 4 {
		t.Errorf("confidential: %+v %v", p, err)
	}
	if _, err := SelectPath(n.rs, PathSpec{Model: "m", NLayers: 2, Mode: ModeConfidential}, rng); !errors.Is(err, ErrNoPath) {
		t.Errorf("no guard: %v", err)
	}
	if _, err := SelectPath(n.rs, PathSpec{Model: "m", Mode: ModeConfidential, Guard: g}, rng); !errors.Is(err, ErrNoPath) {
		t.Errorf("no layers: %v", err)
	}
}

// Anonymous mode: guard → S0 … Sn from compute relays tiling [0, N).

func anonymousNetwork(t testing.TB) *network {
	return build(t, []relaySpec{rel("g", "10.1.0.1", guardR()),
		rel("s13a", "10.2.0.1", compute("m", 0, 3)), rel("s13b", "10.3.0.1", compute("m", 0, 3)),
		rel("s35a", "10.4.0.1", compute("m", 3, 5)), rel("s35b", "10.5.0.1", compute("m", 3, 5)),
		// Confidential relays play no part in anonymous paths.
		rel("pa", "10.6.0.1", party("m", 0, 5)), rel("pb", "10.7.0.1", party("m", 0, 5)), rel("d", "10.8.0.1", dealer("m"))})
}

func TestSelectPathAnonymous(t *testing.T) {
	n := anonymousNetwork(t)
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for range 50 {
		p, err := SelectPath(n.rs, PathSpec{Model: "m", NLayers: 5, Mode: ModeAnonymous, Guard: n.get(t, "g")}, rng)
		if err != nil {
			t.Fatal(err)
		}
		if p.Mode != ModeAnonymous || len(p.Stages) != 0 || len(p.Hops) != 3 ||
			p.Shards[0] != (directory.LayerRange{First: 0, Last: 3}) || p.Shards[1] != (directory.LayerRange{First: 3, Last: 5}) {
			t.Fatalf("path %+v", p)
		}
		for i, h := range p.Hops[1:] {
			if h.Compute == nil || h.Compute.Layers != p.Shards[i] {
				t.Fatalf("hop %d %s does not serve shard %v", i+1, h.Nickname, p.Shards[i])
			}
			seen[h.Nickname] = true
		}
	}
	if len(seen) != 4 {
		t.Errorf("weighted choice used %v of 4 replicas over 50 paths", seen)
	}
}

func TestSelectPathAnonymousExclusions(t *testing.T) {
	n := anonymousNetwork(t)
	// One [0,3) replica in the guard's /16, a mutual family between the
	// other [0,3) replica and one [3,5) replica.
	n.get(t, "s13a").Transports[0].Addr = "10.1.9.9:9001"
	n.get(t, "s13b").Family = []keys.Fingerprint{n.get(t, "s35a").Fingerprint}
	n.get(t, "s35a").Family = []keys.Fingerprint{n.get(t, "s13b").Fingerprint}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		p, err := SelectPath(n.rs, PathSpec{Model: "m", NLayers: 5, Mode: ModeAnonymous, Guard: n.get(t, "g")}, rng)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range p.Hops[1:] {
			if h.Nickname == "s13a" || h.Nickname == "s35a" {
				t.Fatalf("path used an excluded relay %s", h.Nickname)
			}
		}
	}
	// Avoiding the only remaining [0,3) replica leaves no path.
	_, err := SelectPath(n.rs, PathSpec{Model: "m", NLayers: 5, Mode: ModeAnonymous, Guard: n.get(t, "g"),
		Avoid: []keys.Fingerprint{n.get(t, "s13b").Fingerprint}}, rng)
	if !errors.Is(err, ErrNoPath) || !strings.Contains(err.Error(), "starting at layer 0") {
		t.Fatalf("err = %v, want ErrNoPath at layer 0", err)
	}
}

func TestSelectPathAnonymousNeedsFlags(t *testing.T) {
	n := anonymousNetwork(t)
	for i := range n.rs {
		if n.rs[i].Compute != nil {
			n.rs[i].Flags = []directory.Flag{directory.FlagCompute, directory.FlagValid} // not Running
		}
	}
	if _, err := SelectPath(n.rs, PathSpec{Model: "m", NLayers: 5, Mode: ModeAnonymous, Guard: n.get(t, "g")}, rand.New(rand.NewPCG(1, 1))); !errors.Is(err, ErrNoPath) {
		t.Fatalf("err = %v, want ErrNoPath without Running compute relays", err)
	}
}

// Path weights an attacker cannot claim (spec/04 §6.3, §7.4; 08 §10).

// measuredNetwork is a verified method-2 consensus computed by three
// authorities from signed descriptors and votes, and the names of its
// relays by fingerprint.
type measuredNetwork struct {
	c     *directory.Consensus
	names map[keys.Fingerprint]string
}

func (n *measuredNetwork) get(t testing.TB, name string) *directory.RouterStatus {
	t.Helper()
	for i := range n.c.Relays {
		if n.names[n.c.Relays[i].Fingerprint] == name {
			return &n.c.Relays[i]
		}
	}
	t.Fatalf("no relay %q in the consensus", name)
	return nil
}

// attackerNetwork: for each role (guard, compute [0,2), party [0,2),
// dealer) eight honest relays claiming 10 sessions, each in a /16 of its
// own, and an attacker pair — two relays of one operator in one /16,
// declaring each other family — claiming 2^16 sessions. Every authority
// measures every relay by one rule that does not look at who runs it
// (4000–5600 KiB/s), so the attacker is measured like the honest relays.
func attackerNetwork(t testing.TB) *measuredNetwork {
	t.Helper()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	type relayDef struct {
		name  string
		role  directory.Role
		flag  directory.Flag
		addr  string
		evil  bool
		relay *dirtest.Relay
	}
	var defs []*relayDef
	roles := []struct {
		prefix string
		role   directory.Role
		flag   directory.Flag
	}{{"g", directory.RoleGuard, directory.FlagGuard}, {"c", directory.RoleCompute, directory.FlagCompute},
		{"p", directory.RoleMPC, directory.FlagMPC}, {"d", directory.RoleDealer, directory.FlagDealer}}
	for ri, ro := range roles {
		for i := range 8 {
			defs = append(defs, &relayDef{name: fmt.Sprintf("%s%d", ro.prefix, i), role: ro.role, flag: ro.flag,
				addr: fmt.Sprintf("10.%d.0.1:9001", 10*ri+i+1)})
		}
		for i := range 2 {
			defs = append(defs, &relayDef{name: fmt.Sprintf("%s-evil%d", ro.prefix, i), role: ro.role, flag: ro.flag,
				addr: fmt.Sprintf("10.%d.0.%d:9001", 100+ri, i+1), evil: true})
		}
	}
	for _, d := range defs {
		r, err := dirtest.NewRelay(dirtest.Rand("relay-"+d.name), d.addr, t0, d.role)
		if err != nil {
			t.Fatal(err)
		}
		r.Desc.Nickname = d.name
		switch d.role {
		case directory.RoleCompute:
			r.Desc.Compute = &directory.ComputeInfo{Model: "m", Layers: directory.LayerRange{First: 0, Last: 2}}
		case directory.RoleMPC:
			r.Desc.MPC = &directory.MPCInfo{Model: "m", Layers: directory.LayerRange{First: 0, Last: 2}}
		case directory.RoleDealer:
			r.Desc.Dealer = &directory.DealerInfo{Model: "m"}
		}
		if d.evil {
			r.Desc.Capacity.Sessions = 1 << 16
		}
		d.relay = r
	}
	for i, d := range defs { // the attacker pairs declare each other
		if d.evil && strings.HasSuffix(d.name, "evil0") {
			a, b := d.relay, defs[i+1].relay
			a.Desc.Family, b.Desc.Family = []keys.Fingerprint{b.Fingerprint()}, []keys.Fingerprint{a.Fingerprint()}
		}
	}

	var signers []*directory.Signer
	var entries []directory.AuthorityEntry
	for i := range 3 {
		id, err := keys.NewIdentity(dirtest.Rand(fmt.Sprintf("authority-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		signers = append(signers, &directory.Signer{Identity: id})
		entries = append(entries, directory.EntryFor(fmt.Sprintf("auth%d", i), fmt.Sprintf("127.0.0.1:%d", 7000+i), id, nil))
	}
	set, err := directory.NewAuthoritySet(entries, false)
	if err != nil {
		t.Fatal(err)
	}
	va := t0.Truncate(time.Hour).Add(time.Hour)
	names := map[keys.Fingerprint]string{}
	var votes []*directory.Vote
	for ai, s := range signers {
		var rs []directory.RouterStatus
		for j, d := range defs {
			b, err := d.relay.Sign(t0)
			if err != nil {
				t.Fatal(err)
			}
			desc, err := directory.ParseDescriptor(b, t0)
			if err != nil {
				t.Fatal(err)
			}
			flags := []directory.Flag{d.flag, directory.FlagRunning, directory.FlagStable, directory.FlagValid}
			slices.Sort(flags)
			st := directory.StatusOf(desc, flags)
			st.Measured = 4000 + uint64((ai*37+j*53)%17)*100
			rs = append(rs, st)
			names[st.Fingerprint] = d.name
		}
		slices.SortFunc(rs, func(x, y directory.RouterStatus) int { return slices.Compare(x.Fingerprint[:], y.Fingerprint[:]) })
		a := set.Lookup(s.Identity.Fingerprint())
		v := &directory.Vote{Authority: directory.DirSource{Name: a.Name, Fingerprint: a.Fingerprint, Address: a.Address},
			Methods: directory.ConsensusMethods, Published: va.Add(-time.Minute), ValidAfter: va, FreshUntil: va.Add(time.Hour),
			ValidUntil: va.Add(3 * time.Hour), VoteDelay: 5 * time.Minute, DistDelay: 5 * time.Minute,
			KnownFlags: directory.KnownFlags, Params: map[string]int64{}, Relays: rs}
		if err := s.SignVote(v); err != nil {
			t.Fatal(err)
		}
		votes = append(votes, v)
	}
	c, err := directory.ComputeConsensus(votes, set)
	if err != nil {
		t.Fatal(err)
	}
	var sigs []directory.Signature
	for _, s := range signers {
		ss, err := s.SignConsensus(c)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, ss...)
	}
	if c, err = c.WithSignatures(sigs); err != nil {
		t.Fatal(err)
	}
	// What a client does with the document.
	u, err := directory.ParseConsensus(c.Raw())
	if err != nil {
		t.Fatal(err)
	}
	if c, err = u.Verify(set, va.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if c.Method < directory.WeightsMethod || len(c.Relays) != len(defs) {
		t.Fatalf("consensus method %d with %d relays", c.Method, len(c.Relays))
	}
	for i := range c.Relays {
		c.Relays[i].Nickname = names[c.Relays[i].Fingerprint]
	}
	return &measuredNetwork{c: c, names: names}
}

// claimedCapacity is the rule path selection used before measured weights:
// the relay's claimed sessions, at least 1 and at most 2^16.
func claimedCapacity(r *directory.RouterStatus) uint64 {
	return min(max(r.Capacity.Sessions, 1), 1<<16)
}

// attackerDraws counts, over draws paths (and guard samples) from one
// fixed seed, how often the attacker pair of each role is chosen: first in
// the guard sampling order, the compute hop of an anonymous path, party A
// and the dealer of a confidential one.
func attackerDraws(t *testing.T, n *measuredNetwork, draws int) map[string]int {
	t.Helper()
	evil := func(r *directory.RouterStatus) bool { return strings.Contains(r.Nickname, "-evil") }
	guards := map[string]*directory.RouterStatus{}
	var gfps []string
	for i := range n.c.Relays {
		if r := &n.c.Relays[i]; usable(r, directory.FlagGuard) {
			guards[r.Fingerprint.String()] = r
			gfps = append(gfps, r.Fingerprint.String())
		}
	}
	slices.Sort(gfps)
	rng := rand.New(rand.NewPCG(23, 1))
	g0 := n.get(t, "g0")
	anon := PathSpec{Model: "m", NLayers: 2, Mode: ModeAnonymous, Guard: g0}
	conf := PathSpec{Model: "m", NLayers: 2, Mode: ModeConfidential, Guard: g0}
	got := map[string]int{}
	for range draws {
		if evil(guards[weightedOrder(gfps, guards, rng)[0]]) {
			got["guard"]++
		}
		p, err := SelectPath(n.c.Relays, anon, rng)
		if err != nil {
			t.Fatal(err)
		}
		if evil(p.Hops[1]) {
			got["compute"]++
		}
		if p, err = SelectPath(n.c.Relays, conf, rng); err != nil {
			t.Fatal(err)
		}
		if evil(p.Stages[0].A) {
			got["party"]++
		}
		if evil(p.Stages[0].Dealer) {
			got["dealer"]++
		}
	}
	return got
}

// TestClaimedCapacityIgnored: an attacker pair (two relays of one operator,
// in one /16, serving the same role and range) claims 2^16 sessions
// against honest relays claiming 10, and is measured like them. In every
// role it is chosen no more often than its measured share p of the
// consensus weight allows: over n = 2,000 draws from a fixed seed, at most
// n·p + 4·sqrt(n·p·(1−p)) times (the mean plus four standard deviations of
// the binomial count; p is about 0.2 here). The test then puts the claimed
// capacity back as the client's weight and checks that the same draws
// exceed that bound in every role (the attacker pair is then chosen about
// 1,999 times in 2,000), so the test catches a client that trusts claims.
func TestClaimedCapacityIgnored(t *testing.T) {
	n := attackerNetwork(t)
	const draws = 2000
	roleFlag := map[string]directory.Flag{"guard": directory.FlagGuard, "compute": directory.FlagCompute,
		"party": directory.FlagMPC, "dealer": directory.FlagDealer}
	bound := map[string]float64{}
	for role, flag := range roleFlag {
		var all, evil uint64
		for i := range n.c.Relays {
			r := &n.c.Relays[i]
			if !r.HasFlag(flag) {
				continue
			}
			if r.Weight == 0 || r.Unmeasured {
				t.Fatalf("%s: weight %d unmeasured %v in a consensus whose every relay was measured", r.Nickname, r.Weight, r.Unmeasured)
			}
			all += consensusWeight(r)
			if strings.Contains(r.Nickname, "-evil") {
				evil += consensusWeight(r)
				if r.Capacity.Sessions != 1<<16 {
					t.Fatalf("%s claims %d sessions", r.Nickname, r.Capacity.Sessions)
				}
			}
		}
		p := float64(evil) / float64(all)
		if p < 0.1 || p > 0.3 {
			t.Fatalf("%s: the attacker pair's measured share is %.3f; the fixture means about 0.2", role, p)
		}
		bound[role] = draws*p + 4*math.Sqrt(draws*p*(1-p))
	}

	roles := slices.Sorted(maps.Keys(bound))
	got := attackerDraws(t, n, draws)
	for _, role := range roles {
		b := bound[role]
		t.Logf("%s: attacker pair chosen %d of %d times, bound %.0f", role, got[role], draws, b)
		if float64(got[role]) > b {
			t.Errorf("%s: the attacker pair was chosen %d of %d times, more than its measured share allows (%.0f)", role, got[role], draws, b)
		}
	}

	// The same draws with the client weighting by claimed capacity.
	weightOf = claimedCapacity
	defer func() { weightOf = consensusWeight }()
	claimed := attackerDraws(t, n, draws)
	for _, role := range roles {
		b := bound[role]
		t.Logf("%s, weighted by claimed capacity: attacker pair chosen %d of %d times", role, claimed[role], draws)
		if float64(claimed[role]) <= b {
			t.Errorf("%s: weighting by claimed capacity chose the attacker pair %d times, within the bound %.0f: the test would not catch it",
				role, claimed[role], b)
		}
	}
}

// TestDefaultWeight: an entry without a consensus weight (method 1, or
// built from a descriptor) weighs DefaultWeight, the authorities' default
// for unmeasured relays; a consensus weight is used as it is, claims never.
func TestDefaultWeight(t *testing.T) {
	if d := directory.DefaultParams[directory.ParamWeightUnmeasured]; d != DefaultWeight {
		t.Fatalf("DefaultWeight %d, authorities' weight-unmeasured %d", DefaultWeight, d)
	}
	r := status(1, "10.0.0.1:9001", nil)
	r.Capacity.Sessions = 1 << 20
	if w := weight(&r); w != DefaultWeight {
		t.Errorf("no consensus weight, claiming 2^20 sessions: weight %d, want %d", w, DefaultWeight)
	}
	r.Weight = 7
	if w := weight(&r); w != 7 {
		t.Errorf("consensus weight 7: weight %d", w)
	}
}

// onionOnly makes r reachable only at a v3 onion address derived from seed.
func onionOnly(r *directory.RouterStatus, seed byte) {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)).Public().(ed25519.PublicKey)
	r.Transports = []directory.Transport{{Name: directory.OnionTransport, Addr: onionaddr.FromPublicKey(pub) + ":9001"}}
}

// TestSelectPathOnionRelays: relays reachable only at onion addresses are
// usable, and count as one network (their location is unknown; one
// operator can run any number of them), so no path holds two of them.
func TestSelectPathOnionRelays(t *testing.T) {
	n := anonymousNetwork(t)
	onionOnly(n.get(t, "s13a"), 1)
	onionOnly(n.get(t, "s35a"), 2)
	rng := rand.New(rand.NewPCG(5, 6))
	seen := map[string]bool{}
	for range 100 {
		p, err := SelectPath(n.rs, PathSpec{Model: "m", NLayers: 5, Mode: ModeAnonymous, Guard: n.get(t, "g")}, rng)
		if err != nil {
			t.Fatal(err)
		}
		names := []string{p.Hops[1].Nickname, p.Hops[2].Nickname}
		if names[0] == "s13a" && names[1] == "s35a" {
			t.Fatalf("a path holds two onion-only relays: %v", names)
		}
		for _, x := range names {
			seen[x] = true
		}
	}
	if !seen["s13a"] || !seen["s35a"] {
		t.Fatalf("onion-only relays were never chosen: %v", seen)
	}
	// With the other replicas gone, only the two onion relays are left:
	// no path.
	notRunning()(n.get(t, "s13b"))
	notRunning()(n.get(t, "s35b"))
	if _, err := SelectPath(n.rs, PathSpec{Model: "m", NLayers: 5, Mode: ModeAnonymous, Guard: n.get(t, "g")}, rng); !errors.Is(err, ErrNoPath) {
		t.Fatalf("two onion-only relays formed a path: %v", err)
	}
	// An onion address under another transport is not usable.
	n.get(t, "s13b").Flags = append(n.get(t, "s13b").Flags, directory.FlagRunning)
	n.get(t, "s13b").Transports[0].Addr = n.get(t, "s13a").Transports[0].Addr
	if usable(n.get(t, "s13b"), directory.FlagCompute) {
		t.Fatal("a tcp transport at an onion host is usable")
	}
}
