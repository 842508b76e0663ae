package testnet

import (
	"slices"
	"testing"
)

func TestShareCPUs(t *testing.T) {
	mk := func(env ...string) *Network {
		n := &Network{Spec: Spec{Env: env}}
		for _, r := range []string{"authority", "guard", "party", "party", "dealer", "party", "party", "dealer", "client", "compute"} {
			n.Nodes = append(n.Nodes, &Node{Name: r, Role: r})
		}
		n.Nodes[2].Env = []string{"UNFED_CHEAT_TAMPER=1"} // kept beside
		return n
	}
	one := func(n *Network) (got []string) {
		for _, node := range n.Nodes {
			if slices.Contains(node.Env, "GOMAXPROCS=1") {
				got = append(got, node.Role)
			}
		}
		return got
	}

	n := mk()
	n.shareCPUs(2, false)
	if got := one(n); !slices.Equal(got, []string{"party", "party", "dealer", "party", "party", "dealer"}) {
		t.Fatalf("six MPC processes on 2 CPUs: GOMAXPROCS=1 for %v, want every party and dealer only", got)
	}
	if !slices.Contains(n.Nodes[2].Env, "UNFED_CHEAT_TAMPER=1") {
		t.Fatalf("a node's own environment was dropped: %v", n.Nodes[2].Env)
	}
	for _, c := range []struct {
		name      string
		n         *Network
		cpus      int
		inherited bool
	}{
		{"as many CPUs as MPC processes", mk(), 6, false},
		{"GOMAXPROCS inherited from the harness", mk(), 2, true},
		{"GOMAXPROCS in Spec.Env", mk("GOMAXPROCS=2"), 2, false},
	} {
		c.n.shareCPUs(c.cpus, c.inherited)
		if got := one(c.n); len(got) != 0 {
			t.Errorf("%s: GOMAXPROCS=1 for %v, want none", c.name, got)
		}
	}
}
