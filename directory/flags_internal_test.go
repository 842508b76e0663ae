package directory

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/relay/keys"
)

func TestAssignFlagsThresholds(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	mk := func(seed byte, roles ...Role) *Descriptor {
		id, _ := keys.IdentityFromSeed(append(make([]byte, 31), seed))
		return &Descriptor{Identity: id.Public, Roles: roles, Capacity: Capacity{TokensPerSec: 100}}
	}
	model := Model{ID: "m", Layers: 4, Shards: []LayerRange{{0, 2}, {2, 4}}, TensorHashRoot: strings.Repeat("0", 64)}
	in := &flagInputs{now: now, params: map[string]int64{ParamStableUptime: 60, ParamGuardUptime: 600, ParamGuardMinTPS: 50},
		models: map[string]Model{"m": model}, history: map[keys.Fingerprint]*reach{}}
	up := func(d *Descriptor, since time.Duration) {
		in.history[d.Fingerprint()] = &reach{runningSince: now.Add(-since)}
	}
	young, stable, guard, slow, never := mk(1, RoleGuard), mk(2, RoleGuard), mk(3, RoleGuard), mk(4, RoleGuard), mk(5, RoleGuard)
	slow.Capacity.TokensPerSec = 10
	up(young, 30*time.Second)
	up(stable, 5*time.Minute)
	up(guard, time.Hour)
	up(slow, time.Hour)
	comp, offShard := mk(6, RoleCompute), mk(7, RoleCompute)
	comp.Compute = &ComputeInfo{Model: "m", Layers: LayerRange{2, 4}}
	offShard.Compute = &ComputeInfo{Model: "m", Layers: LayerRange{1, 4}}
	up(comp, 0)
	up(offShard, 0)
	// Stage ranges are the parties' own: any range within the model's
	// layers, not only its shards. Nothing pairs parties.
	stage, whole, past, otherModel := mk(8, RoleMPC), mk(9, RoleMPC), mk(10, RoleMPC), mk(11, RoleMPC)
	stage.MPC = &MPCInfo{Model: "m", Layers: LayerRange{1, 3}}
	whole.MPC = &MPCInfo{Model: "m", Layers: LayerRange{0, 4}}
	past.MPC = &MPCInfo{Model: "m", Layers: LayerRange{2, 5}} // the model has 4 layers
	otherModel.MPC = &MPCInfo{Model: "x", Layers: LayerRange{0, 4}}
	mpcDown := mk(12, RoleMPC)
	mpcDown.MPC = &MPCInfo{Model: "m", Layers: LayerRange{0, 4}}
	dealer, dealerOther, dealerDown := mk(13, RoleDealer), mk(14, RoleDealer), mk(15, RoleDealer)
	dealer.Dealer = &DealerInfo{Model: "m"}
	dealerOther.Dealer = &DealerInfo{Model: "x"}
	dealerDown.Dealer = &DealerInfo{Model: "m"}
	both := mk(16, RoleDealer, RoleGuard, RoleMPC)
	both.MPC = &MPCInfo{Model: "m", Layers: LayerRange{0, 2}}
	both.Dealer = &DealerInfo{Model: "m"}
	for _, d := range []*Descriptor{stage, whole, past, otherModel, dealer, dealerOther, both} {
		up(d, 0)
	}
	// A line without its role earns nothing (Sign would refuse it anyway).
	lineOnly := mk(17, RoleGuard)
	lineOnly.MPC = &MPCInfo{Model: "m", Layers: LayerRange{0, 4}}
	lineOnly.Dealer = &DealerInfo{Model: "m"}
	up(lineOnly, 0)
	F := func(fs ...Flag) []Flag { slices.Sort(fs); return fs }
	cases := []struct {
		name string
		d    *Descriptor
		want []Flag
	}{
		{"young", young, F(FlagRunning, FlagValid)},
		{"stable", stable, F(FlagRunning, FlagStable, FlagValid)},
		{"guard", guard, F(FlagGuard, FlagRunning, FlagStable, FlagValid)},
		{"slow", slow, F(FlagRunning, FlagStable, FlagValid)},
		{"never probed", never, F(FlagValid)},
		{"compute", comp, F(FlagCompute, FlagRunning, FlagValid)},
		{"off-shard", offShard, F(FlagRunning, FlagValid)},
		{"mpc stage", stage, F(FlagMPC, FlagRunning, FlagValid)},
		{"mpc whole model", whole, F(FlagMPC, FlagRunning, FlagValid)},
		{"mpc past the last layer", past, F(FlagRunning, FlagValid)},
		{"mpc unknown model", otherModel, F(FlagRunning, FlagValid)},
		{"mpc not probed", mpcDown, F(FlagValid)},
		{"dealer", dealer, F(FlagDealer, FlagRunning, FlagValid)},
		{"dealer unknown model", dealerOther, F(FlagRunning, FlagValid)},
		{"dealer not probed", dealerDown, F(FlagValid)},
		{"party and dealer", both, F(FlagDealer, FlagMPC, FlagRunning, FlagValid)},
		{"lines without roles", lineOnly, F(FlagRunning, FlagValid)},
	}
	for _, c := range cases {
		if got := assignFlags(c.d, in); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	in.history[dealer.Fingerprint()].record(now, errTest) // a failed probe
	if got := assignFlags(dealer, in); !slices.Equal(got, F(FlagValid)) {
		t.Errorf("dealer after a failed probe: %v", got)
	}
}

// TestReachWeights: an authority votes the low median of a relay's last
// five measurements while it is Running, and forgets them when a probe
// fails (spec §6.3).
func TestReachWeights(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var h *reach
	if h.weight() != 0 {
		t.Fatal("a relay never probed has a measured weight")
	}
	h = &reach{}
	h.record(now, nil)
	if h.weight() != 0 {
		t.Fatal("a relay never measured has a measured weight")
	}
	for _, w := range []uint64{700, 100, 0, 600, 200, 500, 300} { // 0: reachable, not measured
		h.measured(w)
	}
	// Kept: 100 600 200 500 300 (700 fell out); low median 300.
	if got := h.weight(); got != 300 || len(h.weights) != measureHistory {
		t.Fatalf("weight %d from %v, want 300 from the last %d", got, h.weights, measureHistory)
	}
	h.measured(50)
	h.measured(60) // 200 500 300 50 60
	if got := h.weight(); got != 200 {
		t.Fatalf("weight %d from %v, want 200", got, h.weights)
	}
	h.record(now.Add(time.Minute), errTest)
	if h.weight() != 0 || len(h.weights) != 0 {
		t.Fatalf("after a failed probe: weight %d, history %v", h.weight(), h.weights)
	}
	h.record(now.Add(2*time.Minute), nil)
	h.measured(900)
	if h.weight() != 900 {
		t.Fatalf("measured again: weight %d", h.weight())
	}
}

// TestWeightParams: weight parameters outside their range are clamped.
func TestWeightParams(t *testing.T) {
	for _, c := range []struct {
		v    int64
		hi   uint64
		want uint64
	}{{-5, 10, 1}, {0, 10, 1}, {7, 10, 7}, {1 << 40, 10, 10}} {
		if got := weightParam(map[string]int64{ParamWeightCap: c.v}, ParamWeightCap, c.hi); got != c.want {
			t.Errorf("%d within [1,%d]: %d, want %d", c.v, c.hi, got, c.want)
		}
	}
	if got := weightParam(nil, ParamWeightPerSession, MaxWeight); got != uint64(DefaultParams[ParamWeightPerSession]) {
		t.Errorf("unset: %d", got)
	}
}

// TestMeasureDue: with MeasureEvery k, a measured relay is due once in any
// k consecutive periods, relays at different offsets; one without a
// measurement is due every period.
func TestMeasureDue(t *testing.T) {
	measured := &reach{weights: []uint64{100}}
	for _, k := range []int{1, 3, 24} {
		for _, seed := range []byte{1, 2, 3} {
			id, _ := keys.IdentityFromSeed(append(make([]byte, 31), seed))
			fp := id.Fingerprint()
			n := 0
			for p := uint64(1000); p < 1000+uint64(k); p++ {
				if measureDue(p, fp, k, measured) {
					n++
				}
				if !measureDue(p, fp, k, &reach{}) || !measureDue(p, fp, k, nil) {
					t.Fatalf("k=%d: an unmeasured relay is not due in period %d", k, p)
				}
			}
			if n != 1 {
				t.Errorf("k=%d: a measured relay is due %d times in %d periods, want once", k, n, k)
			}
		}
	}
}

// TestStakeGatesComputeAndMPC: with a share-chain (flagInputs.stake), a
// compute or party relay gets its flag only with at least the stake
// parameter's amount locked; without one nothing is required.
func TestStakeGatesComputeAndMPC(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	model := Model{ID: "m", Layers: 4, Shards: []LayerRange{{0, 2}, {2, 4}}, TensorHashRoot: strings.Repeat("0", 64)}
	mk := func(seed byte) (*Descriptor, *Descriptor) {
		id, _ := keys.IdentityFromSeed(append(make([]byte, 31), seed))
		c := &Descriptor{Identity: id.Public, Roles: []Role{RoleCompute}, Compute: &ComputeInfo{Model: "m", Layers: LayerRange{0, 2}}}
		id2, _ := keys.IdentityFromSeed(append(make([]byte, 31), seed+100))
		p := &Descriptor{Identity: id2.Public, Roles: []Role{RoleMPC}, MPC: &MPCInfo{Model: "m", Layers: LayerRange{0, 2}}}
		return c, p
	}
	rich, richP := mk(1)
	poor, poorP := mk(2)
	stakes := map[keys.Fingerprint]uint64{rich.Fingerprint(): 10, richP.Fingerprint(): 12, poor.Fingerprint(): 9, poorP.Fingerprint(): 0}
	in := &flagInputs{now: now, params: map[string]int64{ParamStake: 10}, models: map[string]Model{"m": model},
		history: map[keys.Fingerprint]*reach{}, stake: func(fp keys.Fingerprint) uint64 { return stakes[fp] }}
	for _, d := range []*Descriptor{rich, richP, poor, poorP} {
		in.history[d.Fingerprint()] = &reach{runningSince: now}
	}
	for _, c := range []struct {
		d    *Descriptor
		f    Flag
		want bool
	}{{rich, FlagCompute, true}, {richP, FlagMPC, true}, {poor, FlagCompute, false}, {poorP, FlagMPC, false}} {
		if got := slices.Contains(assignFlags(c.d, in), c.f); got != c.want {
			t.Errorf("stake %d: %s %v, want %v", stakes[c.d.Fingerprint()], c.f, got, c.want)
		}
	}
	in.stake = nil // no share-chain: no stake needed
	if !slices.Contains(assignFlags(poor, in), FlagCompute) || !slices.Contains(assignFlags(poorP, in), FlagMPC) {
		t.Error("flags withheld without a share-chain")
	}
}
