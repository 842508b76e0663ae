package sharechain

import (
	"context"
	"errors"
	"testing"

	"github.com/unfed/unfed/directory"
)

// TestNetworkName: the consensus's chain-id names the chain, 0 the
// testnet's, and a node pinned to another name is refused.
func TestNetworkName(t *testing.T) {
	for _, c := range []struct {
		params map[string]int64
		want   string
	}{
		{nil, DefaultNetwork},
		{map[string]int64{directory.ParamChainID: 0}, DefaultNetwork},
		{map[string]int64{directory.ParamChainID: 42}, "unfed-42"},
	} {
		cons := &directory.Consensus{Params: c.params}
		if got := ParamsFromConsensus(cons).Network; got != c.want {
			t.Errorf("chain-id %v: network %q, want %q", c.params, got, c.want)
		}
		if got, err := ConsensusNetwork("", cons); err != nil || got != c.want {
			t.Errorf("chain-id %v unpinned: %q, %v", c.params, got, err)
		}
		if _, err := ConsensusNetwork(c.want, cons); err != nil {
			t.Errorf("chain-id %v pinned to itself: %v", c.params, err)
		}
		if _, err := ConsensusNetwork("unfed-other", cons); err == nil {
			t.Errorf("chain-id %v: a node pinned to another network is accepted", c.params)
		}
	}
	if DefaultParams("unfed-1").Genesis() == DefaultParams("unfed-2").Genesis() {
		t.Fatal("two networks share a genesis")
	}
}

// TestNetworksDoNotMix: a block of one network's chain is refused by a node
// of another, as the block of another network (not one waiting for an
// unknown parent, which would make the node ask for a genesis), and a store
// that holds one network's chain cannot be opened as another's.
func TestNetworksDoNotMix(t *testing.T) {
	ctx := context.Background()
	m := testMint(t, nil)
	ks := keySetOf(t, m)
	pa, pb := DefaultParams("unfed-1"), DefaultParams("unfed-2")
	id := identity(t, 1)
	b := mkBlock(t, pa, id, nil, testNowMs, nil, pay(credits(t, m, 1, 1)[0], 5))

	a := newNode(t, pa, ks, nil)
	if reply, err := a.HandleGossip(ctx, EncodeGossip(MsgBlock, b.Marshal()), testNowMs); err != nil || len(reply) != 0 {
		t.Fatalf("own network: %v, %d replies", err, len(reply))
	}
	other := newNode(t, pb, ks, nil)
	if miss := other.Chain().Missing(b); len(miss) != 0 {
		t.Fatalf("the other network's node asks for %d blocks", len(miss))
	}
	reply, err := other.HandleGossip(ctx, EncodeGossip(MsgBlock, b.Marshal()), testNowMs)
	if !errors.Is(err, ErrOtherNetwork) || len(reply) != 0 {
		t.Fatalf("other network: %v, %d replies; want ErrOtherNetwork", err, len(reply))
	}
	if other.Chain().Len() != 0 {
		t.Fatal("the other network's chain took the block")
	}

	db := openDB(t)
	if _, err := NewChain(ctx, pa, ks, db); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Network(ctx); err != nil || got != pa.Network {
		t.Fatalf("store network %q, %v", got, err)
	}
	if _, err := NewChain(ctx, pb, ks, db); !errors.Is(err, ErrOtherNetwork) {
		t.Fatalf("opening network %s's store as %s: %v", pa.Network, pb.Network, err)
	}
	if _, err := NewChain(ctx, pa, ks, db); err != nil {
		t.Fatalf("reopening as its own network: %v", err)
	}
}
