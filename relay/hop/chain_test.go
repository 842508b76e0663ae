package hop_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/hop/hoptest"
)

const genTokens = 48

// runChain generates n tokens greedily through a chain of services in plain
// mode and returns them with the first LOGITS.
func runChain(t *testing.T, svcs []*hop.Service, setups []*hop.Setup, ids []int, n int) ([]int, *hop.Logits) {
	t.Helper()
	hops := make([]hoptest.Hop, len(svcs))
	for i, s := range svcs {
		hops[i] = s
	}
	chain := hoptest.NewChain(7, hops...)
	defer chain.Close()
	c := chainClient(t, chain)
	c.setupAll(setups)
	first := c.logits(0, ids)
	lg := first
	pos := len(ids)
	var gen []int
	for range n {
		next := greedy(lg)
		gen = append(gen, next)
		lg = c.logits(pos, []int{next})
		pos++
	}
	c.send(0, &hop.Teardown{})
	return gen, first
}

// TestChainGreedyMatchesLocal: three hops serving [0,2), [2,4), [4,5) of
// stories260K generate exactly what the unsplit engine generates.
func TestChainGreedyMatchesLocal(t *testing.T) {
	ids := prompt(t)
	want, _ := localGreedy(t, ids, genTokens)
	shards := []*model.Shard{loadShard(t, 0, 2, model.Limits{}), loadShard(t, 2, 4, model.Limits{}), loadShard(t, 4, 5, model.Limits{})}
	var svcs []*hop.Service
	for _, sh := range shards {
		svcs = append(svcs, newService(t, sh, nil))
	}
	got, first := runChain(t, svcs, plainSetups(t, shards, hop.F32, 5), ids, genTokens)
	if !slices.Equal(got, want) {
		t.Fatalf("chain generated %v\nlocal generated %v", got, want)
	}
	if len(first.TopK) != 5 {
		t.Fatalf("asked for top 5, got %d entries", len(first.TopK))
	}
	for _, s := range svcs {
		if s.Sessions() != 0 {
			t.Fatalf("%d sessions left after the circuit closed", s.Sessions())
		}
	}
	for i, sh := range shards {
		if sh.MemoryUsed() != 0 {
			t.Fatalf("shard %d still holds %d bytes of KV cache", i, sh.MemoryUsed())
		}
	}
}

// TestChainChunkedDenseLogits: two hops, the prompt split into one-row
// ACTIVATIONS messages, dense logits: the first logits are bit-identical to
// the unsplit engine's, and generation matches.
func TestChainChunkedDenseLogits(t *testing.T) {
	ids := prompt(t)
	want, wantFirst := localGreedy(t, ids, 8)
	shards := []*model.Shard{loadShard(t, 0, 3, model.Limits{}), loadShard(t, 3, 5, model.Limits{})}
	var edges [][]byte
	var mu sync.Mutex
	svcs := []*hop.Service{
		newService(t, shards[0], func(c *hop.Config) { c.ChunkRows = 1 }),
		newService(t, shards[1], func(c *hop.Config) {
			c.Observe = func(o hop.Observation) {
				if o.Kind == hop.ObsEdge {
					mu.Lock()
					edges = append(edges, append([]byte(nil), o.Data...))
					mu.Unlock()
				}
			}
		}),
	}
	got, first := runChain(t, svcs, plainSetups(t, shards, hop.F32, 0), ids, 8)
	if !slices.Equal(got, want) {
		t.Fatalf("chain generated %v, local %v", got, want)
	}
	if len(first.Dense) != len(wantFirst) {
		t.Fatalf("dense logits of %d, want %d", len(first.Dense), len(wantFirst))
	}
	for i := range wantFirst {
		if math.Float32bits(first.Dense[i]) != math.Float32bits(wantFirst[i]) {
			t.Fatalf("logit %d: %v, local %v", i, first.Dense[i], wantFirst[i])
		}
	}
	// One envelope per prompt row plus one per generated token, each holding
	// one f32 row.
	mu.Lock()
	defer mu.Unlock()
	if len(edges) != len(ids)+8 {
		t.Fatalf("%d edge messages, want %d", len(edges), len(ids)+8)
	}
	for _, e := range edges {
		if len(e) != hop.EnvelopeOverhead+15+64*4 {
			t.Fatalf("edge envelope of %d bytes", len(e))
		}
	}
}

// TestChainF16: f16 on the edge halves the bytes and stays close to f32.
func TestChainF16(t *testing.T) {
	ids := prompt(t)
	_, wantFirst := localGreedy(t, ids, 0)
	shards := []*model.Shard{loadShard(t, 0, 2, model.Limits{}), loadShard(t, 2, 5, model.Limits{})}
	var sizes []int
	var mu sync.Mutex
	svcs := []*hop.Service{
		newService(t, shards[0], nil),
		newService(t, shards[1], func(c *hop.Config) {
			c.Observe = func(o hop.Observation) {
				if o.Kind == hop.ObsEdge {
					mu.Lock()
					sizes = append(sizes, len(o.Data))
					mu.Unlock()
				}
			}
		}),
	}
	_, first := runChain(t, svcs, plainSetups(t, shards, hop.F16, 0), ids, 0)
	mu.Lock()
	if len(sizes) != 1 || sizes[0] != hop.EnvelopeOverhead+15+len(ids)*64*2 {
		t.Fatalf("edge sizes %v, want one of %d", sizes, hop.EnvelopeOverhead+15+len(ids)*64*2)
	}
	mu.Unlock()
	var maxDiff float64
	for i := range wantFirst {
		maxDiff = max(maxDiff, math.Abs(float64(first.Dense[i]-wantFirst[i])))
	}
	if maxDiff == 0 || maxDiff > 0.05 {
		t.Fatalf("f16 edge changed logits by %v; want a small nonzero difference", maxDiff)
	}
}

// TestEdgeHidesActivations: what the next hop receives on its edge is not the
// activations in any plain encoding, yet opens to exactly them.
func TestEdgeHidesActivations(t *testing.T) {
	ids := prompt(t)
	shards := []*model.Shard{loadShard(t, 0, 2, model.Limits{}), loadShard(t, 2, 5, model.Limits{})}
	// The activations the first hop computes, from a local session.
	ref, err := shards[0].NewSession(model.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	acts, err := ref.ForwardTokens(ids, 0)
	ref.Close()
	if err != nil {
		t.Fatal(err)
	}
	row := make([]byte, 0, 64*4)
	for _, v := range acts[:64] {
		row = binary.LittleEndian.AppendUint32(row, math.Float32bits(v))
	}
	var raw, plain [][]byte
	var mu sync.Mutex
	svcs := []*hop.Service{newService(t, shards[0], nil), newService(t, shards[1], func(c *hop.Config) {
		c.Observe = func(o hop.Observation) {
			mu.Lock()
			defer mu.Unlock()
			switch o.Kind {
			case hop.ObsEdge:
				raw = append(raw, append([]byte(nil), o.Data...))
			case hop.ObsEdgePlain:
				plain = append(plain, append([]byte(nil), o.Data...))
			}
		}
	})}
	runChain(t, svcs, plainSetups(t, shards, hop.F32, 1), ids, 0)
	mu.Lock()
	defer mu.Unlock()
	if len(raw) != 1 || len(plain) != 1 {
		t.Fatalf("%d envelopes, %d opened", len(raw), len(plain))
	}
	if !bytes.Contains(plain[0], row) {
		t.Fatal("the opened edge message does not hold the first hop's activations")
	}
	if bytes.Contains(raw[0], row[:16]) {
		t.Fatal("activation bytes visible in the edge envelope")
	}
}
