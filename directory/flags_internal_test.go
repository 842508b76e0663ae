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
		models: map[string]Model{"m": model}, descs: map[keys.Fingerprint]*Descriptor{}, history: map[keys.Fingerprint]*reach{}}
	up := func(d *Descriptor, since time.Duration) {
		in.descs[d.Fingerprint()] = d
		in.history[d.Fingerprint()] = &reach{runningSince: now.Add(-since)}
	}
	young, stable, guard, slow, never := mk(1, RoleGuard), mk(2, RoleGuard), mk(3, RoleGuard), mk(4, RoleGuard), mk(5, RoleGuard)
	slow.Capacity.TokensPerSec = 10
	up(young, 30*time.Second)
	up(stable, 5*time.Minute)
	up(guard, time.Hour)
	up(slow, time.Hour)
	in.descs[never.Fingerprint()] = never
	comp, offShard := mk(6, RoleCompute), mk(7, RoleCompute)
	comp.Compute = &ComputeInfo{Model: "m", Layers: LayerRange{2, 4}}
	offShard.Compute = &ComputeInfo{Model: "m", Layers: LayerRange{1, 4}}
	up(comp, 0)
	up(offShard, 0)
	a, b, c := mk(8, RoleMPC), mk(9, RoleMPC), mk(10, RoleMPC)
	a.MPC = &MPCInfo{Party: "A", Partner: b.Fingerprint(), Model: "m"}
	b.MPC = &MPCInfo{Party: "B", Partner: a.Fingerprint(), Model: "m"}
	c.MPC = &MPCInfo{Party: "A", Partner: a.Fingerprint(), Model: "m"} // a does not name c back
	up(a, 0)
	up(b, 0)
	up(c, 0)
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
		{"mpc a", a, F(FlagMPC, FlagRunning, FlagValid)},
		{"mpc b", b, F(FlagMPC, FlagRunning, FlagValid)},
		{"mpc unpaired", c, F(FlagRunning, FlagValid)},
	}
	for _, c := range cases {
		if got := assignFlags(c.d, in); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	in.history[b.Fingerprint()].record(now, errTest) // partner unreachable
	if got := assignFlags(a, in); slices.Contains(got, FlagMPC) {
		t.Errorf("MPC with an unreachable partner: %v", got)
	}
}
