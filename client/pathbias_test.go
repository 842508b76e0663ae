package client

import (
	"fmt"
	"testing"

	"github.com/unfed/unfed/client/openai"
	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/origin"
)

// biasNetwork is an anonymous network: guards g1 (the guard in use, the
// attacker in the guard case) and g2; shard [0,3) served by s0..s<first-1>
// (s0 of weight s0Weight), shard [3,5) by t0..t<second-1>, every relay on
// its own /16 and of weight 10 unless said.
func biasNetwork(t *testing.T, first, second int, s0Weight uint64) *network {
	specs := []relaySpec{rel("g1", "10.1.0.1", guardR(), weighted(10)), rel("g2", "10.2.0.1", guardR(), weighted(10))}
	for i := range first {
		w := uint64(10)
		if i == 0 {
			w = s0Weight
		}
		specs = append(specs, rel(fmt.Sprint("s", i), fmt.Sprintf("10.%d.0.1", 10+i), compute("m", 0, 3), weighted(w)))
	}
	for i := range second {
		specs = append(specs, rel(fmt.Sprint("t", i), fmt.Sprintf("10.%d.0.1", 50+i), compute("m", 3, 5), weighted(10)))
	}
	return build(t, specs)
}

// attack says whether a malicious relay kills circuit p, and as which hop:
// the hop that fails the EXTEND to the next (0 the guard).
type attack func(p *Path) (extender int, kill bool)

// simulate runs n generations, each with its own isolation key, through
// the client's real path choice, failure classification and blame, on
// circuits the attack may kill with EXTEND_FAILED, and returns how many
// generations completed and how many of those had a colluder as hop.
func simulate(t *testing.T, n *network, gens int, colluders map[string]bool, hopNo int, a attack) (done, colluded int, b *backend) {
	t.Helper()
	clk := newFakeClock()
	b = testBackend(t, clk)
	b.cfg.Retries = 3
	// g1 is the first guard of the sample: the one in use.
	b.guards.state.Sampled = []sampledGuard{{Fingerprint: n.byName["g1"].Fingerprint.String(), AddedAt: clk.now()},
		{Fingerprint: n.byName["g2"].Fingerprint.String(), AddedAt: clk.now()}}
	c := &directory.Consensus{Relays: n.rs, Models: []directory.Model{{ID: "m", Layers: 5}}}
	m := &c.Models[0]
	for gen := range gens {
		g := &generation{b: b, mode: ModeAnonymous, req: openai.GenerateRequest{Isolation: fmt.Sprint("caller-", gen)}}
		faults, unreachable := 0, 0
		for faults <= b.cfg.Retries {
			p, _, err := b.choosePath(c, m, g)
			if err != nil {
				break // no path left: the generation fails
			}
			g.path = p
			ext, kill := a(p)
			if !kill {
				b.pathBias(p, nil)
				done++
				if colluders[p.Hops[hopNo].Nickname] {
					colluded++
				}
				break
			}
			err = &hopFailure{Relay: p.Hops[ext+1].Fingerprint,
				Err: fmt.Errorf("client: build circuit: %w", &origin.ExtendError{Hop: ext, Reason: cell.ReasonConnectFailed})}
			f := classify(err, p)
			b.pathBias(p, err)
			g.fault(f)
			if f.unreachable && unreachable < maxUnreachable {
				unreachable++
				continue
			}
			faults++
		}
		clk.advance(faultFor) // faults are per key anyway; keep the clock moving
	}
	return done, colluded, b
}

// TestPathBias: a relay that fails every circuit not through its colluders
// does not raise their share of the paths that complete beyond a stated
// bound, and a guard doing it is dropped.
//
//   - A middle hop (s0, 80 % of the first shard's weight) fails the EXTEND
//     of every circuit whose next hop is not its colluder (t0, one of 6 of
//     equal weight). The client cannot tell the liar from the target, so it
//     avoids both; the colluder's share of completed generations stays
//     within twice its weight share (1/6): avoiding the honest target too
//     is what costs the rest. The mutation (blame the target only, as
//     before issue 23) lets the liar stay and herd.
//   - The guard g1 fails every circuit whose first hop is not its colluder
//     (s0, one of 10): path bias drops it after pathBiasMinCircs counted
//     circuits, and over 300 generations the colluder's share stays within
//     its share of the shard plus 5 points. With path bias off (the
//     mutation) every completed generation goes through the colluder.
func TestPathBias(t *testing.T) {
	middle := func(t *testing.T) (done, colluded int) {
		n := biasNetwork(t, 3, 6, 80)
		done, colluded, _ = simulate(t, n, 600, map[string]bool{"t0": true}, 2, func(p *Path) (int, bool) {
			return 1, p.Hops[1].Nickname == "s0" && p.Hops[2].Nickname != "t0"
		})
		return done, colluded
	}
	done, colluded := middle(t)
	share := float64(colluded) / float64(done)
	t.Logf("middle hop attack: %d of %d completed generations through the colluder (%.3f; weight share %.3f)", colluded, done, share, 1.0/6)
	if done < 500 || share > 2.0/6 {
		t.Errorf("middle hop attack: colluder share %.3f over %d generations, bound %.3f", share, done, 2.0/6)
	}

	guard := func(t *testing.T) (done, colluded int, g1Disabled bool) {
		n := biasNetwork(t, 10, 2, 10)
		done, colluded, b := simulate(t, n, 300, map[string]bool{"s0": true}, 1, func(p *Path) (int, bool) {
			return 0, p.Hops[0].Nickname == "g1" && p.Hops[1].Nickname != "s0"
		})
		return done, colluded, b.guards.state.Sampled[0].Disabled
	}
	gDone, gColluded, dropped := guard(t)
	if !dropped {
		t.Error("the guard that killed circuits was not disabled")
	}
	gShare := float64(gColluded) / float64(gDone)
	t.Logf("guard attack: %d of %d completed generations through the colluder (%.3f; weight share 0.100)", gColluded, gDone, gShare)
	if gDone < 250 || gShare > 0.15 {
		t.Errorf("guard attack: colluder share %.3f over %d generations, bound 0.15", gShare, gDone)
	}

	t.Run("mutation", func(t *testing.T) {
		blameOnlyExtendTarget = true
		done, colluded := middle(t)
		blameOnlyExtendTarget = false
		share := float64(colluded) / float64(done)
		t.Logf("mutated middle hop attack: share %.3f", share)
		if share <= 2.0/6 {
			t.Errorf("blaming only the EXTEND target should let the middle hop herd: share %.3f", share)
		}
		pathBiasOff = true
		defer func() { pathBiasOff = false }()
		gDone, gColluded, _ := guard(t)
		share = float64(gColluded) / float64(gDone)
		t.Logf("mutated guard attack: share %.3f", share)
		if share <= 0.15 {
			t.Errorf("without path bias the guard should herd: share %.3f", share)
		}
	})
}

// TestPathBiasHonestGuardKept: a guard whose circuits fail at an ordinary
// rate (one in five) is not disabled; one below pathBiasDropRate is, after
// pathBiasMinCircs circuits and not before, and is then never chosen.
func TestPathBiasHonestGuardKept(t *testing.T) {
	clk := newFakeClock()
	g, err := LoadGuards(t.TempDir(), DefaultGuardConfig(), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	rs := []directory.RouterStatus{status(1, "10.1.0.1:9001", []directory.Flag{directory.FlagGuard}),
		status(2, "10.2.0.1:9001", []directory.Flag{directory.FlagGuard})}
	first, err := g.Choose(rs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if _, disabled, err := g.RecordCircuit(first.Fingerprint, i%5 != 0); err != nil || disabled {
			t.Fatalf("honest guard disabled after %d circuits: %v", i+1, err)
		}
	}
	second := &rs[0]
	if second.Fingerprint == first.Fingerprint {
		second = &rs[1]
	}
	for i := range pathBiasMinCircs {
		_, disabled, err := g.RecordCircuit(second.Fingerprint, false)
		if err != nil || disabled != (i == pathBiasMinCircs-1) {
			t.Fatalf("circuit %d: disabled %v, %v", i+1, disabled, err)
		}
	}
	for range 20 {
		if c, err := g.Choose(rs); err != nil || c.Fingerprint == second.Fingerprint {
			t.Fatalf("chose %v, %v: the disabled guard must not be used", c, err)
		}
	}
	// The state survives a restart.
	g2, err := LoadGuards(g.path[:len(g.path)-len(guardFile)], DefaultGuardConfig(), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range g2.state.Sampled {
		if s.Fingerprint == second.Fingerprint.String() && !s.Disabled {
			t.Fatal("path bias state lost across a restart")
		}
	}
}
