package hop_test

import (
	"math"
	"slices"
	"testing"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/hop/hoptest"
)

// hiddenSetups returns the SETUPs of a chain whose client holds the model's
// ends: the first hop takes HIDDEN rows, the last returns FINAL_HIDDEN.
func hiddenSetups(t testing.TB, shards []*model.Shard) []*hop.Setup {
	setups := plainSetups(t, shards, hop.F32, 0)
	setups[0].Input = hop.InputHidden
	setups[len(setups)-1].HiddenOut = true
	return setups
}

// TestChainHiddenEnds: the client embeds and applies the head itself
// (spec §3.11); the hops see no token id and return no logits, and the
// logits the client computes from FINAL_HIDDEN are bit for bit the unsplit
// engine's, so greedy generation matches.
func TestChainHiddenEnds(t *testing.T) {
	ids := prompt(t)
	want, wantFirst := localGreedy(t, ids, 16)
	ends, err := model.LoadEnds(modeltest.Path(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer ends.Close()
	shards := []*model.Shard{loadShard(t, 0, 2, model.Limits{}), loadShard(t, 2, 5, model.Limits{})}
	svcs := []*hop.Service{newService(t, shards[0], nil), newService(t, shards[1], nil)}
	chain := hoptest.NewChain(7, svcs[0], svcs[1])
	defer chain.Close()
	c := chainClient(t, chain)
	c.setupAll(hiddenSetups(t, shards))
	dim := ends.Config().Dim
	step := func(start int, ids []int) []float32 {
		t.Helper()
		// Two messages for a prompt: FINAL only on the second.
		for i := 0; i < len(ids); {
			n := len(ids) - i
			if i == 0 && len(ids) > 1 {
				n = len(ids) / 2
			}
			var x []float32
			for _, id := range ids[i : i+n] {
				row, err := ends.Embed(id)
				if err != nil {
					t.Fatal(err)
				}
				x = append(x, row...)
			}
			c.send(0, &hop.Hidden{Activations: hop.Activations{Start: start + i, N: n, Dim: dim, Final: i+n == len(ids), Data: x}})
			i += n
		}
		from, m := c.recv()
		h, ok := m.(*hop.Hidden)
		if !ok || !h.Out || from != 1 || h.Start != start+len(ids)-1 || h.N != 1 || h.Dim != dim {
			t.Fatalf("hop %d answered HIDDEN with %v", from, m)
		}
		lg, err := ends.Logits(h.Data)
		if err != nil {
			t.Fatal(err)
		}
		return lg
	}
	lg := step(0, ids)
	for i := range wantFirst {
		if math.Float32bits(lg[i]) != math.Float32bits(wantFirst[i]) {
			t.Fatalf("logit %d: %v from the client's head, local %v", i, lg[i], wantFirst[i])
		}
	}
	var got []int
	pos := len(ids)
	for range 16 {
		next := hop.TopK(lg, 1)[0].ID
		got = append(got, next)
		lg = step(pos, []int{next})
		pos++
	}
	if !slices.Equal(got, want) {
		t.Fatalf("chain with client ends generated %v\nlocal %v", got, want)
	}
}

// TestHiddenInputRefusals: embedding rows are token ids a lookup away, so a
// relay that refuses TOKENS refuses HIDDEN too; HIDDEN goes only to layer 0,
// only to a hop set up for it, and FINAL_HIDDEN only from the last shard.
func TestHiddenInputRefusals(t *testing.T) {
	whole := func() *hop.Setup {
		return &hop.Setup{Role: hop.RoleCompute, Input: hop.InputHidden, First: 0, Last: 5, ModelID: modelID, HiddenOut: true}
	}
	refusing := newService(t, loadShard(t, 0, 5, model.Limits{}), func(c *hop.Config) { c.AllowPlain = false })
	wantCode(t, do(t, refusing, &rec{}, whole()), hop.CodeInsecureRefused)

	later := newService(t, loadShard(t, 2, 5, model.Limits{}), nil)
	m := whole()
	m.First = 2
	wantCode(t, do(t, later, &rec{}, m), hop.CodeBadMessage)

	early := newService(t, loadShard(t, 0, 2, model.Limits{}), nil)
	m = whole()
	m.Last, m.Out, m.OutHops = 2, newSecret(t), 1
	wantCode(t, do(t, early, &rec{}, m), hop.CodeBadMessage) // FINAL_HIDDEN asked of a shard before the last

	s := newService(t, loadShard(t, 0, 5, model.Limits{}), nil)
	r := &rec{id: 2}
	tokens := whole()
	tokens.Input = hop.InputTokens
	if _, ok := do(t, s, r, tokens).(*hop.SetupOK); !ok {
		t.Fatal("SETUP refused")
	}
	// HIDDEN to a hop set up for TOKENS is a fatal protocol error.
	wantCode(t, do(t, s, r, &hop.Hidden{Activations: hop.Activations{N: 1, Dim: 64, Final: true, Data: make([]float32, 64)}}), hop.CodeBadMessage)

	s2 := newService(t, loadShard(t, 0, 5, model.Limits{}), nil)
	r2 := &rec{id: 3}
	if _, ok := do(t, s2, r2, whole()).(*hop.SetupOK); !ok {
		t.Fatal("SETUP refused")
	}
	wantCode(t, do(t, s2, r2, &hop.Hidden{Activations: hop.Activations{N: 1, Dim: 63, Final: true, Data: make([]float32, 63)}}), hop.CodeBadMessage)
}
