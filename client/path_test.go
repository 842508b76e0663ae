package client

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/unfed/unfed/directory"
	"github.com/unfed/unfed/relay/keys"
)

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

func testNetwork() []directory.RouterStatus {
	var rs []directory.RouterStatus
	n := 0
	next := func(flags ...directory.Flag) int {
		n++
		rs = append(rs, status(n, fmt.Sprintf("10.%d.0.1:9001", n), flags))
		return len(rs) - 1
	}
	next(directory.FlagGuard)
	a := next(directory.FlagMPC)
	b := next(directory.FlagMPC)
	rs[a].MPC = &directory.MPCInfo{Party: "A", Partner: rs[b].Fingerprint, Model: "m"}
	rs[b].MPC = &directory.MPCInfo{Party: "B", Partner: rs[a].Fingerprint, Model: "m"}
	for _, lr := range []directory.LayerRange{{First: 1, Last: 3}, {First: 1, Last: 3}, {First: 3, Last: 5}, {First: 3, Last: 5}, {First: 0, Last: 3}} {
		c := next(directory.FlagCompute)
		rs[c].Compute = &directory.ComputeInfo{Model: "m", Layers: lr}
	}
	return rs
}

func TestSelectPathMPC(t *testing.T) {
	rs := testNetwork()
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[keys.Fingerprint]bool{}
	for i := 0; i < 50; i++ {
		p, err := SelectPath(rs, PathSpec{Model: "m", NLayers: 5, MPC: true, Guard: &rs[0]}, rng)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Hops) != 5 || p.Hops[1].MPC.Party != "A" || p.Hops[2].MPC.Party != "B" {
			t.Fatalf("bad path shape: %+v", p)
		}
		if p.Shards[0] != (directory.LayerRange{First: 1, Last: 3}) || p.Shards[1] != (directory.LayerRange{First: 3, Last: 5}) {
			t.Fatalf("shards %v", p.Shards)
		}
		for _, h := range p.Hops[3:] {
			seen[h.Fingerprint] = true
		}
	}
	if len(seen) != 4 {
		t.Errorf("weighted choice used %d of 4 replicas over 50 paths", len(seen))
	}
}

func TestSelectPathPlainStartsAtZero(t *testing.T) {
	rs := testNetwork()
	p, err := SelectPath(rs, PathSpec{Model: "m", NLayers: 5, Guard: &rs[0]}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if p.MPC || p.Shards[0].First != 0 || p.Shards[len(p.Shards)-1].Last != 5 {
		t.Fatalf("plain path %+v", p.Shards)
	}
}

func TestSelectPathExclusions(t *testing.T) {
	rs := testNetwork()
	rng := rand.New(rand.NewPCG(3, 4))
	// Put one 1-3 replica in the guard's /16: it must never be chosen.
	rs[3].Transports[0].Addr = "10.1.9.9:9001"
	// Declare a mutual family between B's... and one 3-5 replica and A.
	rs[5].Family = []keys.Fingerprint{rs[1].Fingerprint}
	rs[1].Family = []keys.Fingerprint{rs[5].Fingerprint}
	for i := 0; i < 50; i++ {
		p, err := SelectPath(rs, PathSpec{Model: "m", NLayers: 5, MPC: true, Guard: &rs[0]}, rng)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range p.Hops[1:] {
			if h.Fingerprint == rs[3].Fingerprint || h.Fingerprint == rs[5].Fingerprint {
				t.Fatalf("path used an excluded relay %s", h.Fingerprint)
			}
		}
	}
	// Avoiding the only remaining 1-3 replica leaves no path.
	_, err := SelectPath(rs, PathSpec{Model: "m", NLayers: 5, MPC: true, Guard: &rs[0], Avoid: []keys.Fingerprint{rs[4].Fingerprint}}, rng)
	if !errors.Is(err, ErrNoPath) {
		t.Fatalf("err = %v, want ErrNoPath", err)
	}
}

func TestSelectPathNeedsFlags(t *testing.T) {
	rs := testNetwork()
	for i := range rs {
		if rs[i].MPC != nil {
			rs[i].Flags = []directory.Flag{directory.FlagValid, directory.FlagMPC} // not Running
		}
	}
	if _, err := SelectPath(rs, PathSpec{Model: "m", NLayers: 5, MPC: true, Guard: &rs[0]}, rand.New(rand.NewPCG(1, 1))); !errors.Is(err, ErrNoPath) {
		t.Fatalf("err = %v, want ErrNoPath without a Running pair", err)
	}
}
