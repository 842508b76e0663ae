package hop_test

import (
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/hop/hoptest"
)

// Confidential circuits (spec/10): per stage a dealer D and the parties A
// and B, the client embedding and sharing the input and reconstructing the
// output itself.

const storiesLayers = 5

var storiesRanges = [][2]int{{0, 2}, {2, storiesLayers}}

func storiesPath(t testing.TB) string { return modeltest.Path(t, "stories260K.gguf") }

func storiesConfig(t testing.TB) (model.Config, mpc.Config) {
	t.Helper()
	c, err := model.ReadConfig(storiesPath(t))
	if err != nil {
		t.Fatal(err)
	}
	mc, err := mpc.ConfigOf(c)
	if err != nil {
		t.Fatal(err)
	}
	return c, mc
}

var (
	stageMu    sync.Mutex
	stageCache = map[[2]int]*mpc.PreparedStage{}
)

// preparedStage loads and prepares the layers [first, last) of stories260K
// once per test binary: sessions share it read-only, as on a relay.
func preparedStage(t testing.TB, first, last int) *mpc.PreparedStage {
	t.Helper()
	stageMu.Lock()
	defer stageMu.Unlock()
	if ps := stageCache[[2]int{first, last}]; ps != nil {
		return ps
	}
	w, err := mpc.LoadStageWeights(storiesPath(t), first, last)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := mpc.PrepareStage(w, mpc.Params{})
	if err != nil {
		t.Fatal(err)
	}
	stageCache[[2]int{first, last}] = ps
	return ps
}

// partyService serves the stage [first, last) as party A or B.
func partyService(t testing.TB, first, last int, mods ...func(*hop.Config)) *hop.Service {
	t.Helper()
	return newService(t, nil, func(c *hop.Config) {
		c.AllowPlain = false
		c.Party = &hop.PartyConfig{Stage: preparedStage(t, first, last), Layers: storiesLayers}
		for _, f := range mods {
			f(c)
		}
	})
}

// dealerService deals any stage of stories260K from its shape alone.
func dealerService(t testing.TB, mods ...func(*hop.Config)) *hop.Service {
	t.Helper()
	c, _ := storiesConfig(t)
	return newService(t, nil, func(cfg *hop.Config) {
		cfg.AllowPlain = false
		cfg.Dealer = &hop.DealerConfig{Model: c}
		for _, f := range mods {
			f(cfg)
		}
	})
}

// confServices returns D, A, B for each range, in circuit order; mods[i]
// applies to the service at position i (nil: none).
func confServices(t testing.TB, ranges [][2]int, mods map[int]func(*hop.Config)) []*hop.Service {
	var svcs []*hop.Service
	for _, r := range ranges {
		for j := range 3 {
			var ms []func(*hop.Config)
			if f := mods[len(svcs)]; f != nil {
				ms = append(ms, f)
			}
			if j == 0 {
				svcs = append(svcs, dealerService(t, ms...))
			} else {
				svcs = append(svcs, partyService(t, r[0], r[1], ms...))
			}
		}
	}
	return svcs
}

// confSetups returns the SETUPs of D_i, A_i, B_i for every stage (spec/10
// §3.2), with fresh edge secrets.
func confSetups(t testing.TB, ranges [][2]int) []*hop.Setup {
	var out []*hop.Setup
	var inA, inAB, inB, inBA *hop.EdgeSecret
	for i, r := range ranges {
		deal, dealB, pair := newSecret(t), newSecret(t), newSecret(t)
		d := &hop.Setup{Role: hop.RoleDealer, Input: hop.InputNone, First: r[0], Last: r[1], ModelID: modelID,
			Deal: deal, DealB: dealB}
		a := &hop.Setup{Role: hop.RolePartyA, Input: hop.InputShares, First: r[0], Last: r[1], ModelID: modelID,
			Pair: pair, Deal: deal}
		b := &hop.Setup{Role: hop.RolePartyB, Input: hop.InputShares, First: r[0], Last: r[1], ModelID: modelID,
			Pair: pair, DealB: dealB}
		if i > 0 {
			a.In, a.InB = inA, inBA
			b.In, b.InB = inB, inAB
		}
		if i < len(ranges)-1 {
			inA, inAB, inB, inBA = newSecret(t), newSecret(t), newSecret(t), newSecret(t)
			a.Out, a.OutB, a.OutHops, a.NextLast = inA, inAB, 3, ranges[i+1][1]
			b.Out, b.OutB, b.OutHops, b.NextLast = inB, inBA, 3, ranges[i+1][1]
		}
		out = append(out, d, a, b)
	}
	return out
}

// confClient is the client of a confidential circuit: it embeds tokens,
// shares them with the first stage, asks every dealer for each step and
// reconstructs the last stage's output.
type confClient struct {
	*client
	ends   *model.Ends
	hashes [][8]byte // per stage
	stages int
	step   int
	dealt  int
}

func newConfClient(t testing.TB, c *client, ranges [][2]int) *confClient {
	t.Helper()
	ends, err := model.LoadEnds(storiesPath(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ends.Close() })
	_, mc := storiesConfig(t)
	cc := &confClient{client: c, ends: ends, stages: len(ranges)}
	for _, r := range ranges {
		cc.hashes = append(cc.hashes, mpc.StageHash(mc, mpc.Params{}, r[0], r[1]))
	}
	return cc
}

// dealUpTo asks every dealer for the steps before n not yet dealt.
func (cc *confClient) dealUpTo(n int) {
	if n <= cc.dealt {
		return
	}
	for ; cc.dealt < n; cc.dealt++ {
		for s := range cc.stages {
			cc.send(3*s, &hop.Deal{Step: cc.dealt, Rows: 1})
		}
	}
}

// input shares the embedding of id with A_1 and B_1 for the next step.
func (cc *confClient) input(id int, final bool) {
	cc.t.Helper()
	x, err := cc.ends.Embed(id)
	if err != nil {
		cc.t.Fatal(err)
	}
	a, b, err := mpc.ShareInputs(x, 1, cc.hashes[0], uint32(cc.step), cc.step)
	if err != nil {
		cc.t.Fatal(err)
	}
	cc.send(1, &hop.MPCInput{Final: final, Body: a})
	cc.send(2, &hop.MPCInput{Final: final, Body: b})
	cc.step++
}

// output reads the last stage's two MPC_OUTPUTs for step and returns the
// hidden state.
func (cc *confClient) output(step int) []float32 {
	cc.t.Helper()
	a, b := 3*cc.stages-2, 3*cc.stages-1
	got := map[int][]byte{}
	for len(got) < 2 {
		from, m := cc.recv()
		o, ok := m.(*hop.MPCOutput)
		if !ok || (from != a && from != b) || got[from] != nil || !o.Final {
			cc.t.Fatalf("hop %d sent %v while the client waited for the output of step %d", from, m, step)
		}
		got[from] = o.Body
	}
	h, err := mpc.ReconstructOutputs(got[b], got[a], cc.hashes[cc.stages-1], uint32(step))
	if err != nil {
		cc.t.Fatal(err)
	}
	return h
}

// batch runs ids as one batch (DEAL ahead for the batch, FINAL on the last)
// and returns the greedy next token.
func (cc *confClient) batch(ids []int) int {
	cc.t.Helper()
	cc.dealUpTo(cc.step + len(ids))
	for i, id := range ids {
		cc.input(id, i == len(ids)-1)
	}
	lg, err := cc.ends.Logits(cc.output(cc.step - 1))
	if err != nil {
		cc.t.Fatal(err)
	}
	return hop.TopK(lg, 1)[0].ID
}

// generate decodes n tokens greedily after the prompt.
func (cc *confClient) generate(ids []int, n int) []int {
	cc.t.Helper()
	next := cc.batch(ids)
	var gen []int
	for len(gen) < n {
		gen = append(gen, next)
		if len(gen) < n {
			next = cc.batch([]int{next})
		}
	}
	return gen
}

func chainOf(t testing.TB, id uint64, svcs []*hop.Service) (*hoptest.Chain, *client) {
	hops := make([]hoptest.Hop, len(svcs))
	for i, s := range svcs {
		hops[i] = s
	}
	chain := hoptest.NewChain(id, hops...)
	t.Cleanup(chain.Close)
	return chain, chainClient(t, chain)
}

// TestConfidentialChainGreedyMatchesLocal: stories260K in two stages, [0,2)
// and [2,5), each a dealer and two parties, in memory (D1 A1 B1 D2 A2 B2):
// greedy decoding from the reconstructed hidden states equals the engine's
// local greedy decoding for 20 tokens. No relay receives a token id,
// activations or logits: every message each one receives is of a type its
// role expects, and the dealers report the PREP bytes they dealt.
func TestConfidentialChainGreedyMatchesLocal(t *testing.T) {
	ids := prompt(t)
	const n = 20
	want, _ := localGreedy(t, ids, n)

	var mu sync.Mutex
	seen := map[int]map[string]bool{}
	var dealt int
	mods := map[int]func(*hop.Config){}
	for pos := range 6 {
		mods[pos] = func(c *hop.Config) {
			c.Observe = func(o hop.Observation) {
				var name string
				switch o.Kind {
				case hop.ObsClient:
					m, err := hop.Decode(o.Data)
					if err != nil {
						t.Errorf("hop %d: client message does not decode: %v", pos, err)
						return
					}
					name = m.Type().String()
				case hop.ObsEdgePlain:
					m, err := hop.DecodeEdge(o.Data)
					if err != nil {
						t.Errorf("hop %d: edge message does not decode: %v", pos, err)
						return
					}
					name = m.EdgeType().String()
				default:
					return
				}
				mu.Lock()
				if seen[pos] == nil {
					seen[pos] = map[string]bool{}
				}
				seen[pos][name] = true
				mu.Unlock()
			}
			c.PrepDealt = func(b int) {
				mu.Lock()
				dealt += b
				mu.Unlock()
			}
		}
	}
	svcs := confServices(t, storiesRanges, mods)
	chain, c := chainOf(t, 21, svcs)
	c.setupAll(confSetups(t, storiesRanges))
	cc := newConfClient(t, c, storiesRanges)
	got := cc.generate(ids, n)
	if !slices.Equal(got, want) {
		t.Fatalf("confidential chain generated %v\nlocal generated %v", got, want)
	}
	chain.Close()
	for i, s := range svcs {
		if s.Sessions() != 0 {
			t.Fatalf("hop %d keeps %d sessions after the circuit closed", i, s.Sessions())
		}
	}

	mu.Lock()
	defer mu.Unlock()
	wantSeen := []string{
		"SETUP DEAL",                          // D1
		"SETUP MPC_INPUT MPC_PREP MPC_PEER",   // A1
		"SETUP MPC_INPUT MPC_PREP MPC_PEER",   // B1
		"SETUP DEAL",                          // D2
		"SETUP MPC_PREP MPC_RESHARE MPC_PEER", // A2
		"SETUP MPC_PREP MPC_RESHARE MPC_PEER", // B2
	}
	for pos, w := range wantSeen {
		var names []string
		for name := range seen[pos] {
			names = append(names, name)
		}
		slices.Sort(names)
		ws := splitSorted(w)
		if !slices.Equal(names, ws) {
			t.Errorf("hop %d received %v, want %v", pos, names, ws)
		}
	}
	steps := len(ids) + n - 1
	_, mc := storiesConfig(t)
	var wantBytes int
	for _, r := range storiesRanges {
		for pos := range steps {
			a, b, err := mpc.StagePrepBytes(mc, mpc.Params{}, r[0], r[1], pos, 1)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes += a + b
		}
	}
	if dealt != wantBytes {
		t.Fatalf("dealers reported %d PREP bytes, want %d", dealt, wantBytes)
	}
}

func splitSorted(s string) []string {
	out := strings.Fields(s)
	slices.Sort(out)
	return out
}

// TestRelayConfidentialGreedyMatchesLocal: guard → D1 → A1 → B1 → D2 → A2 →
// B2 over real circuit switches: PREPs, reshares and peer messages as edge
// cells over 1 to 4 links, A's deal-B PREPs passing through A, greedy
// generation matching the unsplit engine.
func TestRelayConfidentialGreedyMatchesLocal(t *testing.T) {
	ids := prompt(t)
	const n = 8
	want, _ := localGreedy(t, ids, n)
	c, _ := relayNet(t, confServices(t, storiesRanges, nil))
	c.setupAll(confSetups(t, storiesRanges))
	got := newConfClient(t, c, storiesRanges).generate(ids, n)
	if !slices.Equal(got, want) {
		t.Fatalf("confidential relays generated %v\nlocal generated %v", got, want)
	}
}

// TestConfidentialSetupValidation: a party serves exactly its stage, as
// either side, with exactly the keys of spec/10 §3.2; a dealer serves any
// stage of its model with exactly the deal keys.
func TestConfidentialSetupValidation(t *testing.T) {
	first := partyService(t, 0, 2, func(c *hop.Config) { c.Party.MaxSessions = 1000 })
	last := partyService(t, 2, storiesLayers)
	dealer := dealerService(t)
	setups := confSetups(t, storiesRanges)
	d1, a1, b1, a2, b2 := setups[0], setups[1], setups[2], setups[4], setups[5]
	mod := func(base *hop.Setup, f func(*hop.Setup)) *hop.Setup {
		m := *base
		f(&m)
		return &m
	}
	cases := []struct {
		name string
		svc  *hop.Service
		m    *hop.Setup
		code hop.Code // 0: SETUP_OK
	}{
		{"A of stage 1", first, a1, 0},
		{"B of stage 1", first, b1, 0},
		{"A of stage 2", last, a2, 0},
		{"B of stage 2", last, b2, 0},
		{"dealer stage 1", dealer, d1, 0},
		{"dealer whole model", dealer, mod(d1, func(m *hop.Setup) { m.First, m.Last = 0, storiesLayers }), 0},
		{"dealer one layer", dealer, mod(d1, func(m *hop.Setup) { m.First, m.Last = 4, 5 }), 0},

		{"wrong model", first, mod(a1, func(m *hop.Setup) { m.ModelID = "other" }), hop.CodeWrongModel},
		{"party wrong range", first, mod(a1, func(m *hop.Setup) { m.Last = 3 }), hop.CodeRangeNotServed},
		{"party other stage", first, a2, hop.CodeRangeNotServed},
		{"party as compute", first, mod(a1, func(m *hop.Setup) {
			m.Role, m.Input, m.Pair, m.Deal, m.Out, m.OutB, m.OutHops, m.NextLast = hop.RoleCompute, hop.InputTokens, nil, nil, nil, nil, 0, 0
		}), hop.CodeRangeNotServed},
		{"party as dealer", first, d1, hop.CodeRangeNotServed},
		{"dealer as party", dealer, a1, hop.CodeRangeNotServed},
		{"dealer as compute", dealer, mod(d1, func(m *hop.Setup) {
			m.Role, m.Input, m.Deal, m.DealB = hop.RoleCompute, hop.InputTokens, nil, nil
		}), hop.CodeRangeNotServed},
		{"dealer past the model", dealer, mod(d1, func(m *hop.Setup) { m.Last = storiesLayers + 1 }), hop.CodeRangeNotServed},

		{"party input tokens", first, mod(a1, func(m *hop.Setup) { m.Input = hop.InputTokens }), hop.CodeBadMessage},
		{"party top-k", last, mod(a2, func(m *hop.Setup) { m.TopK = 1 }), hop.CodeBadMessage},
		{"party no pair", first, mod(a1, func(m *hop.Setup) { m.Pair = nil }), hop.CodeBadMessage},
		{"A with deal-B", first, mod(a1, func(m *hop.Setup) { m.Deal, m.DealB = nil, m.Deal }), hop.CodeBadMessage},
		{"A with both deals", first, mod(a1, func(m *hop.Setup) { m.DealB = newSecret(t) }), hop.CodeBadMessage},
		{"B with deal", first, mod(b1, func(m *hop.Setup) { m.Deal, m.DealB = m.DealB, nil }), hop.CodeBadMessage},
		{"stage 1 with in", first, mod(a1, func(m *hop.Setup) { m.In = newSecret(t) }), hop.CodeBadMessage},
		{"stage 1 with in-B", first, mod(b1, func(m *hop.Setup) { m.InB = newSecret(t) }), hop.CodeBadMessage},
		{"stage 2 without in", last, mod(a2, func(m *hop.Setup) { m.In = nil }), hop.CodeBadMessage},
		{"stage 2 without in-B", last, mod(b2, func(m *hop.Setup) { m.InB = nil }), hop.CodeBadMessage},
		{"stage 1 without out", first, mod(a1, func(m *hop.Setup) { m.Out, m.OutHops = nil, 0 }), hop.CodeBadMessage},
		{"stage 1 without out-B", first, mod(b1, func(m *hop.Setup) { m.OutB = nil }), hop.CodeBadMessage},
		{"stage 1 out 2 hops", first, mod(a1, func(m *hop.Setup) { m.OutHops = 2 }), hop.CodeBadMessage},
		{"stage 1 without next", first, mod(a1, func(m *hop.Setup) { m.NextLast = 0 }), hop.CodeBadMessage},
		{"stage 1 next past the model", first, mod(a1, func(m *hop.Setup) { m.NextLast = storiesLayers + 1 }), hop.CodeBadMessage},
		{"last stage with out", last, mod(a2, func(m *hop.Setup) { m.Out, m.OutHops = newSecret(t), 3 }), hop.CodeBadMessage},
		{"last stage with out-B", last, mod(b2, func(m *hop.Setup) { m.OutB = newSecret(t) }), hop.CodeBadMessage},
		{"last stage with next", last, mod(a2, func(m *hop.Setup) { m.NextLast = storiesLayers + 1 }), hop.CodeBadMessage},
		{"party context", first, mod(a1, func(m *hop.Setup) { m.MaxContext = 2049 }), hop.CodeContextTooLong},

		{"dealer input shares", dealer, mod(d1, func(m *hop.Setup) { m.Input = hop.InputShares }), hop.CodeBadMessage},
		{"dealer no deal", dealer, mod(d1, func(m *hop.Setup) { m.Deal = nil }), hop.CodeBadMessage},
		{"dealer no deal-B", dealer, mod(d1, func(m *hop.Setup) { m.DealB = nil }), hop.CodeBadMessage},
		{"dealer pair", dealer, mod(d1, func(m *hop.Setup) { m.Pair = newSecret(t) }), hop.CodeBadMessage},
		{"dealer in", dealer, mod(d1, func(m *hop.Setup) { m.In = newSecret(t) }), hop.CodeBadMessage},
		{"dealer out", dealer, mod(d1, func(m *hop.Setup) { m.Out, m.OutHops = newSecret(t), 1 }), hop.CodeBadMessage},
		{"dealer top-k", dealer, mod(d1, func(m *hop.Setup) { m.TopK = 1 }), hop.CodeBadMessage},
		{"dealer next", dealer, mod(d1, func(m *hop.Setup) { m.NextLast = 4 }), hop.CodeBadMessage},
		{"dealer context", dealer, mod(d1, func(m *hop.Setup) { m.MaxContext = 2049 }), hop.CodeContextTooLong},
	}
	for i, c := range cases {
		r := &rec{id: uint64(100 + i)}
		got := do(t, c.svc, r, c.m)
		if c.code == 0 {
			ok, isOK := got.(*hop.SetupOK)
			if !isOK || ok.First != c.m.First || ok.Last != c.m.Last || ok.Dim != 64 || ok.Vocab != 512 || ok.ModelID != modelID {
				t.Errorf("%s: %v, want SETUP_OK", c.name, got)
			}
		} else if e, isErr := got.(*hop.Error); !isErr || e.Code != c.code {
			t.Errorf("%s: %v, want ERROR %v", c.name, got, c.code)
		}
		c.svc.Closed(r)
	}
}

// TestMPCSessionLimits: party and dealer sessions are bounded, and the slot
// of a closed circuit is free again.
func TestMPCSessionLimits(t *testing.T) {
	setups := confSetups(t, storiesRanges)
	for _, c := range []struct {
		svc *hop.Service
		m   *hop.Setup
	}{
		{partyService(t, 0, 2, func(c *hop.Config) { c.Party.MaxSessions = 1 }), setups[1]},
		{dealerService(t, func(c *hop.Config) { c.Dealer.MaxSessions = 1 }), setups[0]},
	} {
		r := &rec{id: 1}
		if _, ok := do(t, c.svc, r, c.m).(*hop.SetupOK); !ok {
			t.Fatal("first session refused")
		}
		wantCode(t, do(t, c.svc, &rec{id: 2}, c.m), hop.CodeCapacity)
		c.svc.Closed(r)
		if _, ok := do(t, c.svc, &rec{id: 3}, c.m).(*hop.SetupOK); !ok {
			t.Fatal("slot not released by Closed")
		}
	}
}

// TestDealErrors: a DEAL must ask for the dealer's next step and 1..1024
// steps within the session's context; anything else is refused.
func TestDealErrors(t *testing.T) {
	s := dealerService(t)
	d := confSetups(t, storiesRanges)[0]
	deal := func(step, count uint32) []byte {
		return []byte{byte(hop.TypeDeal), byte(step >> 24), byte(step >> 16), byte(step >> 8), byte(step),
			byte(count >> 24), byte(count >> 16), byte(count >> 8), byte(count)}
	}
	fatal := []struct {
		name string
		b    []byte
	}{
		{"wrong step", deal(1, 1)},
		{"rows 0", deal(0, 0)},
		{"rows 256", deal(0, hop.MaxDealRows+1)},
		{"truncated", deal(0, 1)[:8]},
	}
	for i, c := range fatal {
		r := &rec{id: uint64(i + 1)}
		do(t, s, r, d)
		got := deliverRaw(t, s, r, c.b)
		if e, ok := got.(*hop.Error); !ok || e.Code != hop.CodeBadMessage {
			t.Errorf("%s: %v, want bad-message", c.name, got)
		}
		if len(r.edges) != 0 {
			t.Errorf("%s: %d PREP messages sent", c.name, len(r.edges))
		}
		// bad-message is fatal: the session is gone.
		if m := deliverRaw(t, s, r, deal(0, 1)); m != nil || len(r.edges) != 0 {
			t.Errorf("%s: the session survived (%v)", c.name, m)
		}
		s.Closed(r)
	}

	// A good DEAL: one PREP to A (1 hop) and one to B (2 hops) for its
	// step of 3 rows, each one fragment for stories260K, on the deal channel.
	r := &rec{id: 50}
	small := *d
	small.MaxContext = 4
	do(t, s, r, &small)
	if m := deliverRaw(t, s, r, deal(0, 3)); m != nil {
		t.Fatalf("DEAL answered %v", m)
	}
	// (B's explicit shares for 3 rows may take more than one fragment.)
	hops := map[int]int{}
	for i, e := range r.edges {
		if e.dir != cell.Forward || (e.hops != 1 && e.hops != 2) || e.data[0] != byte(hop.ChannelDeal) {
			t.Fatalf("edge %d: %v %d hops, channel %d", i, e.dir, e.hops, e.data[0])
		}
		hops[e.hops]++
	}
	if hops[1] == 0 || hops[2] == 0 {
		t.Fatalf("edge messages by distance %v for one step of 3 rows: want PREPs to A and B", hops)
	}
	sent := len(r.edges)
	// Past the session's context: context-too-long, not fatal.
	wantCode(t, deliverRaw(t, s, r, deal(1, 2)), hop.CodeContextTooLong)
	if m := deliverRaw(t, s, r, deal(1, 1)); m != nil || len(r.edges) != sent+2 {
		t.Fatalf("after context-too-long: %v, %d edge messages", m, len(r.edges))
	}
	// TRUNCATE is not something a dealer does; MPC_INPUT is not for it.
	wantCode(t, do(t, s, r, &hop.Truncate{}), hop.CodeUnsupported)
	wantCode(t, do(t, s, r, &hop.MPCInput{Body: []byte{1}}), hop.CodeBadMessage)
}

// syncRec is a hop.Circuit safe for a party's worker goroutine.
type syncRec struct {
	id    uint64
	mu    sync.Mutex
	bad   int // messages to the client that did not decode
	sent  []hop.Msg
	edges []edgeSend
	wake  chan struct{}
}

func newSyncRec(id uint64) *syncRec { return &syncRec{id: id, wake: make(chan struct{}, 1)} }

func (r *syncRec) ID() uint64 { return r.id }

func (r *syncRec) Send(_ context.Context, msg []byte) error {
	m, err := hop.Decode(msg)
	r.mu.Lock()
	if err != nil {
		r.bad++
		r.mu.Unlock()
		return nil
	}
	r.sent = append(r.sent, m)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

func (r *syncRec) SendEdge(_ context.Context, dir cell.Direction, hops int, msg []byte) error {
	r.mu.Lock()
	r.edges = append(r.edges, edgeSend{dir, hops, append([]byte(nil), msg...)})
	r.mu.Unlock()
	return nil
}

// next waits for the n-th (from 0) message sent to the client.
func (r *syncRec) next(t testing.TB, n int) hop.Msg {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		if len(r.sent) > n {
			m := r.sent[n]
			r.mu.Unlock()
			return m
		}
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-deadline:
			t.Fatalf("no message %d from the hop", n)
		}
	}
}

// prepsFor deals n steps of the stage [first, last) and returns the PREPs
// of side A and side B.
func prepsFor(t testing.TB, first, last, n int) (as, bs [][]byte) {
	t.Helper()
	_, mc := storiesConfig(t)
	d, err := mpc.NewStageDealer(mc, first, last, mpc.Params{}, 0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		a, b, err := d.Next(1)
		if err != nil {
			t.Fatal(err)
		}
		as, bs = append(as, a), append(bs, b)
	}
	return as, bs
}

// TestPrepErrors: a party refuses a PREP that is not its next (another
// side's, a later step's) with mpc-failure, more than mpc.MaxQueuedPreps
// PREPs or more pending bytes than its limit with out-of-capacity, and
// MPC_PREP anywhere but the deal channel with bad-message or edge-auth.
func TestPrepErrors(t *testing.T) {
	as, bs := prepsFor(t, 0, 2, mpc.MaxQueuedPreps+1)
	a1 := confSetups(t, storiesRanges)[1]
	open := func(t *testing.T, s *hop.Service, id uint64) (*syncRec, *hop.Sealer) {
		r := newSyncRec(id)
		s.Deliver(r, hop.Inbound{Data: a1.Append(nil)})
		if _, ok := r.next(t, 0).(*hop.SetupOK); !ok {
			t.Fatal("party SETUP refused")
		}
		sl, err := hop.NewSealer(a1.Deal, hop.ChannelDeal)
		if err != nil {
			t.Fatal(err)
		}
		return r, sl
	}
	prep := func(t *testing.T, s *hop.Service, r *syncRec, sl *hop.Sealer, m hop.EdgeMsg, dist int) {
		env, err := sl.Seal(nil, m.Append(nil))
		if err != nil {
			t.Fatal(err)
		}
		s.Deliver(r, hop.Inbound{Edge: true, Dir: cell.Forward, Distance: dist, Data: env})
	}
	expect := func(t *testing.T, r *syncRec, code hop.Code) {
		t.Helper()
		if e, ok := r.next(t, 1).(*hop.Error); !ok || e.Code != code {
			t.Fatalf("got %v, want ERROR %v", r.next(t, 1), code)
		}
	}
	s := partyService(t, 0, 2)
	t.Run("other side", func(t *testing.T) {
		r, sl := open(t, s, 1)
		prep(t, s, r, sl, &hop.MPCPrep{Body: bs[0]}, 1)
		expect(t, r, hop.CodeMPCFailure)
	})
	t.Run("later step", func(t *testing.T) {
		r, sl := open(t, s, 2)
		prep(t, s, r, sl, &hop.MPCPrep{Body: as[1]}, 1)
		expect(t, r, hop.CodeMPCFailure)
	})
	t.Run("garbage", func(t *testing.T) {
		r, sl := open(t, s, 3)
		prep(t, s, r, sl, &hop.MPCPrep{Body: []byte{4, 4, 0}}, 1)
		expect(t, r, hop.CodeMPCFailure)
	})
	t.Run("fragments", func(t *testing.T) {
		// A PREP cut into many fragments is joined and taken: no reply.
		r, sl := open(t, s, 4)
		for _, f := range hop.SplitPrep(as[0], 100) {
			prep(t, s, r, sl, f, 1)
		}
		// The second PREP is refused only if the first was taken in
		// full: step 1's PREP is then the next one, and is accepted;
		// then a repeated one is refused.
		prep(t, s, r, sl, &hop.MPCPrep{Body: as[1]}, 1)
		prep(t, s, r, sl, &hop.MPCPrep{Body: as[1]}, 1)
		expect(t, r, hop.CodeMPCFailure)
	})
	t.Run("too many", func(t *testing.T) {
		r, sl := open(t, s, 5)
		for i := range mpc.MaxQueuedPreps + 1 {
			// (the later steps' PREPs outgrow one edge message, as a
			// dealer's do: it sends them in fragments)
			for _, f := range hop.SplitPrep(as[i], 1<<19) {
				prep(t, s, r, sl, f, 1)
			}
		}
		expect(t, r, hop.CodeCapacity)
	})
	t.Run("pending bytes", func(t *testing.T) {
		small := partyService(t, 0, 2, func(c *hop.Config) { c.Party.MaxPending = 3 * len(as[0]) })
		r, sl := open(t, small, 6)
		for i := range 4 {
			prep(t, small, r, sl, &hop.MPCPrep{Body: as[i]}, 1)
		}
		expect(t, r, hop.CodeCapacity)
	})
	t.Run("pending fragments", func(t *testing.T) {
		small := partyService(t, 0, 2, func(c *hop.Config) { c.Party.MaxPending = 1000 })
		r, sl := open(t, small, 7)
		for range 11 {
			prep(t, small, r, sl, &hop.MPCPrep{More: true, Body: make([]byte, 100)}, 1)
		}
		expect(t, r, hop.CodeCapacity)
	})
	t.Run("on the pair channel", func(t *testing.T) {
		r, _ := open(t, s, 8)
		sl, _ := hop.NewSealer(a1.Pair, hop.ChanPairBA)
		env, _ := sl.Seal(nil, (&hop.MPCPrep{Body: as[0]}).Append(nil))
		s.Deliver(r, hop.Inbound{Edge: true, Dir: cell.Backward, Distance: 1, Data: env})
		expect(t, r, hop.CodeBadMessage)
	})
	t.Run("under the other deal key", func(t *testing.T) {
		r, _ := open(t, s, 9)
		sl, _ := hop.NewSealer(newSecret(t), hop.ChannelDeal)
		prep(t, s, r, sl, &hop.MPCPrep{Body: as[0]}, 2)
		expect(t, r, hop.CodeEdgeAuth)
	})
	t.Run("to a compute hop", func(t *testing.T) {
		cs := newService(t, loadShard(t, 2, 5, model.Limits{}), nil)
		in := newSecret(t)
		r := &rec{id: 10}
		do(t, cs, r, &hop.Setup{Role: hop.RoleCompute, Input: hop.InputActivations, First: 2, Last: 5, ModelID: modelID, TopK: 1, In: in})
		sl, _ := hop.NewSealer(in, hop.ChanData)
		env, _ := sl.Seal(nil, (&hop.MPCPrep{Body: as[0]}).Append(nil))
		cs.Deliver(r, hop.Inbound{Edge: true, Dir: cell.Forward, Distance: 1, Data: env})
		m, _ := hop.Decode(r.sent[len(r.sent)-1])
		wantCode(t, m, hop.CodeBadMessage)
	})
}

// TestInputErrors: MPC_INPUT only to a first-stage party, its SHARE for this
// side and step; MPC_RESHARE pieces that disagree on FINAL end the session.
func TestInputErrors(t *testing.T) {
	setups := confSetups(t, storiesRanges)
	_, mc := storiesConfig(t)
	h1 := mpc.StageHash(mc, mpc.Params{}, 0, 2)
	h2 := mpc.StageHash(mc, mpc.Params{}, 2, 5)
	x := make([]float32, 64)
	inA, inB, err := mpc.ShareInputs(x, 1, h1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	as1, _ := prepsFor(t, 0, 2, 1)
	as2, _ := prepsFor(t, 2, 5, 1)
	deliverPrep := func(s *hop.Service, r *syncRec, m *hop.Setup, p []byte) {
		sl, _ := hop.NewSealer(m.Deal, hop.ChannelDeal)
		env, _ := sl.Seal(nil, (&hop.MPCPrep{Body: p}).Append(nil))
		s.Deliver(r, hop.Inbound{Edge: true, Dir: cell.Forward, Distance: 1, Data: env})
	}
	first := partyService(t, 0, 2)
	for i, c := range []struct {
		name string
		body []byte
	}{
		{"B's share to A", inB},
		{"a later step", func() []byte { b, _, _ := mpc.ShareInputs(x, 1, h1, 1, 1); return b }()},
		{"the wrong stage", func() []byte { b, _, _ := mpc.ShareInputs(x, 1, h2, 0, 0); return b }()},
		{"garbage", []byte{4, 5, 0, 16}},
	} {
		r := newSyncRec(uint64(i + 1))
		first.Deliver(r, hop.Inbound{Data: setups[1].Append(nil)})
		deliverPrep(first, r, setups[1], as1[0])
		first.Deliver(r, hop.Inbound{Data: (&hop.MPCInput{Final: true, Body: c.body}).Append(nil)})
		if e, ok := r.next(t, 1).(*hop.Error); !ok || e.Code != hop.CodeMPCFailure {
			t.Errorf("%s: %v, want mpc-failure", c.name, r.next(t, 1))
		}
		first.Closed(r)
	}
	_ = inA

	// MPC_INPUT to a party of a later stage.
	last := partyService(t, 2, 5)
	r := &rec{id: 20}
	do(t, last, r, setups[4])
	wantCode(t, do(t, last, r, &hop.MPCInput{Body: inA}), hop.CodeBadMessage)

	// Reshare pieces that disagree on FINAL.
	rs := newSyncRec(21)
	last.Deliver(rs, hop.Inbound{Data: setups[4].Append(nil)})
	deliverPrep(last, rs, setups[4], as2[0])
	pieces := [2][]byte{
		mpc.EncodeShare(&mpc.Share{Kind: mpc.ShareReshare, Role: mpc.RoleA, Hash: h2, Vals: make([]uint64, 64)}),
		mpc.EncodeShare(&mpc.Share{Kind: mpc.ShareReshare, Role: mpc.RoleA, Hash: h2, Vals: make([]uint64, 64)}),
	}
	for ch, sec := range []*hop.EdgeSecret{setups[4].In, setups[4].InB} {
		sl, _ := hop.NewSealer(sec, hop.Channel(ch))
		env, _ := sl.Seal(nil, (&hop.MPCReshare{Final: ch == 0, Body: pieces[ch]}).Append(nil))
		last.Deliver(rs, hop.Inbound{Edge: true, Dir: cell.Forward, Distance: 3, Data: env})
	}
	if e, ok := rs.next(t, 1).(*hop.Error); !ok || e.Code != hop.CodeMPCFailure {
		t.Fatalf("pieces disagreeing on FINAL: %v", rs.next(t, 1))
	}
}

// TestPartyKilledMidStep: when one party's session ends while the other is
// inside a step waiting for it, the other ends its session at once with a
// clean mpc-failure instead of waiting: whether the first was torn down by
// the client or failed on its own.
func TestPartyKilledMidStep(t *testing.T) {
	ranges := [][2]int{{0, storiesLayers}}
	for _, kill := range []string{"teardown", "failure"} {
		t.Run(kill, func(t *testing.T) {
			// B has both its PREP and A's first opening.
			peerSeen := make(chan struct{})
			var mu sync.Mutex
			got := map[byte]bool{}
			svcs := confServices(t, ranges, map[int]func(*hop.Config){2: func(c *hop.Config) {
				c.Observe = func(o hop.Observation) {
					if o.Kind != hop.ObsEdgePlain || len(o.Data) == 0 {
						return
					}
					mu.Lock()
					defer mu.Unlock()
					had := got[byte(hop.EdgeMPCPeer)] && got[byte(hop.EdgeMPCPrep)]
					got[o.Data[0]] = true
					if !had && got[byte(hop.EdgeMPCPeer)] && got[byte(hop.EdgeMPCPrep)] {
						close(peerSeen)
					}
				}
			}})
			_, c := chainOf(t, 31, svcs)
			c.setupAll(confSetups(t, ranges))
			cc := newConfClient(t, c, ranges)
			cc.dealUpTo(1)
			// Only A gets its input: A starts the step, sends B its first
			// opening and waits for B's.
			x, _ := cc.ends.Embed(prompt(t)[0])
			a, _, err := mpc.ShareInputs(x, 1, cc.hashes[0], 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			c.send(1, &hop.MPCInput{Final: true, Body: a})
			select {
			case <-peerSeen:
			case <-time.After(30 * time.Second):
				t.Fatal("A never sent B its first opening")
			}
			switch kill {
			case "teardown":
				c.send(2, &hop.Teardown{})
			case "failure":
				c.send(2, &hop.MPCInput{Final: true, Body: []byte{4, 5, 1, 16}})
				c.expectError(2, hop.CodeMPCFailure)
			}
			e := c.expectError(1, hop.CodeMPCFailure)
			t.Logf("A: %v", e)
			// A's session is over: later input is dropped without reply.
			c.send(1, &hop.MPCInput{Final: true, Body: a})
			c.send(0, &hop.Deal{Step: 1, Rows: 1})
			c.send(0, &hop.Truncate{})
			c.expectError(0, hop.CodeUnsupported)
		})
	}
}

// TestConfidentialCircuitClosedMidStep: destroying the circuit while a
// party waits inside a step ends every session and frees every slot.
func TestConfidentialCircuitClosedMidStep(t *testing.T) {
	ranges := [][2]int{{0, storiesLayers}}
	svcs := confServices(t, ranges, map[int]func(*hop.Config){
		0: func(c *hop.Config) { c.Dealer.MaxSessions = 1 },
		1: func(c *hop.Config) { c.Party.MaxSessions = 1 },
		2: func(c *hop.Config) { c.Party.MaxSessions = 1 },
	})
	chain, c := chainOf(t, 41, svcs)
	setups := confSetups(t, ranges)
	c.setupAll(setups)
	cc := newConfClient(t, c, ranges)
	cc.dealUpTo(2)
	x, _ := cc.ends.Embed(1)
	a, _, _ := mpc.ShareInputs(x, 1, cc.hashes[0], 0, 0)
	c.send(1, &hop.MPCInput{Final: true, Body: a})
	chain.Close()
	for i, s := range svcs {
		if s.Sessions() != 0 {
			t.Fatalf("hop %d keeps a session", i)
		}
		if _, ok := do(t, s, &rec{id: 99}, setups[i]).(*hop.SetupOK); !ok {
			t.Fatalf("hop %d did not free its slot", i)
		}
	}
}

// TestMPCStepDoneReports: each party reports every completed step to the
// metrics hook: 19 rounds per layer (the first norm and its truncation, 4;
// the block of 05 §7, 14; the final truncation, 1) and a peer wait within
// the step's time.
func TestMPCStepDoneReports(t *testing.T) {
	var mu sync.Mutex
	type key struct {
		pos  int
		role mpc.Role
	}
	got := map[key][]mpc.Stats{}
	mods := map[int]func(*hop.Config){}
	for _, pos := range []int{1, 2, 4, 5} {
		mods[pos] = func(c *hop.Config) {
			c.MPCStepDone = func(r mpc.Role, st mpc.Stats) {
				mu.Lock()
				got[key{pos, r}] = append(got[key{pos, r}], st)
				mu.Unlock()
			}
		}
	}
	_, c := chainOf(t, 51, confServices(t, storiesRanges, mods))
	c.setupAll(confSetups(t, storiesRanges))
	cc := newConfClient(t, c, storiesRanges)
	cc.batch(prompt(t)[:3])
	cc.batch([]int{42})
	mu.Lock()
	defer mu.Unlock()
	for k, layers := range map[key]int{{1, mpc.RoleA}: 2, {2, mpc.RoleB}: 2, {4, mpc.RoleA}: 3, {5, mpc.RoleB}: 3} {
		sts := got[k]
		if len(sts) != 4 {
			t.Fatalf("party %v reported %d steps, want 4", k, len(sts))
		}
		for i, st := range sts {
			if st.Rounds != mpc.StageRounds(layers) || st.Time <= 0 || st.PeerWait < 0 || st.PeerWait > st.Time {
				t.Fatalf("party %v step %d: %+v", k, i, st)
			}
		}
	}
}

// TestCaptureRecordsEveryMessage: with Config.Capture, every message a hop
// of a confidential chain receives from the client or opens on an edge, and
// every one it sends, is captured in plaintext with its direction; the
// records decode, and what one hop sends on an edge another opens.
func TestCaptureRecordsEveryMessage(t *testing.T) {
	type rec struct {
		dir hop.CaptureDir
		msg []byte
	}
	var mu sync.Mutex
	caps := map[int][]rec{}
	mods := map[int]func(*hop.Config){}
	for pos := range 6 {
		mods[pos] = func(c *hop.Config) {
			c.Capture = func(dir hop.CaptureDir, msg []byte) {
				mu.Lock()
				caps[pos] = append(caps[pos], rec{dir, append([]byte(nil), msg...)})
				mu.Unlock()
			}
		}
	}
	chain, c := chainOf(t, 61, confServices(t, storiesRanges, mods))
	c.setupAll(confSetups(t, storiesRanges))
	cc := newConfClient(t, c, storiesRanges)
	cc.generate(prompt(t)[:2], 2)
	chain.Close()

	mu.Lock()
	defer mu.Unlock()
	sentEdges, openedEdges := map[string]int{}, map[string]int{}
	for pos := range 6 {
		count := map[string]int{}
		for _, r := range caps[pos] {
			var name string
			switch r.dir {
			case hop.CaptureFromClient, hop.CaptureToClient:
				m, err := hop.Decode(r.msg)
				if err != nil {
					t.Fatalf("hop %d: captured client message: %v", pos, err)
				}
				name = m.Type().String()
			case hop.CaptureFromEdge, hop.CaptureToEdge:
				m, err := hop.DecodeEdge(r.msg)
				if err != nil {
					t.Fatalf("hop %d: captured edge message: %v", pos, err)
				}
				name = m.EdgeType().String()
				if r.dir == hop.CaptureToEdge {
					sentEdges[string(r.msg)]++
				} else {
					openedEdges[string(r.msg)]++
				}
			default:
				t.Fatalf("hop %d: direction %d", pos, r.dir)
			}
			count[[]string{"in", "edge-in", "out", "edge-out"}[r.dir]+":"+name]++
		}
		steps := 3 // two prompt tokens and one generated
		want := map[string]int{"in:SETUP": 1, "out:SETUP_OK": 1}
		switch pos {
		case 0, 3:
			want["in:DEAL"] = steps // one per step
			want["edge-out:MPC_PREP"] = 2 * steps
		default:
			want["edge-in:MPC_PREP"] = steps
			if pos < 3 {
				want["in:MPC_INPUT"] = steps
				want["edge-out:MPC_RESHARE"] = 2 * steps
			} else {
				want["edge-in:MPC_RESHARE"] = 2 * steps
				want["out:MPC_OUTPUT"] = 2 // FINAL steps only
			}
		}
		for k, n := range want {
			if count[k] != n {
				t.Errorf("hop %d captured %d %s, want %d (all: %v)", pos, count[k], k, n, count)
			}
		}
		if isParty := pos%3 != 0; isParty != (count["edge-in:MPC_PEER"] > 0) || isParty != (count["edge-out:MPC_PEER"] > 0) {
			t.Errorf("hop %d: %d MPC_PEER in, %d out", pos, count["edge-in:MPC_PEER"], count["edge-out:MPC_PEER"])
		}
		total := 0
		for _, n := range count {
			total += n
		}
		extra := count["edge-in:MPC_PEER"] + count["edge-out:MPC_PEER"]
		for _, n := range want {
			extra += n
		}
		if total != extra {
			t.Errorf("hop %d captured unexpected messages: %v", pos, count)
		}
	}
	for m, n := range sentEdges {
		if openedEdges[m] != n {
			t.Fatalf("an edge message sent %d times was opened %d times", n, openedEdges[m])
		}
	}
}

// FuzzConfidentialService: whatever a client or a neighbour sends a party
// (of the first or the last stage, either side) or a dealer after a good
// SETUP — as a client message, or as an edge message sealed on any channel
// the hop holds — the hop never panics, sends only messages that decode,
// and frees the session when the circuit closes.
func FuzzConfidentialService(f *testing.F) {
	as, bs := prepsFor(f, 0, 2, 1)
	_, mc := storiesConfig(f)
	in, _, err := mpc.ShareInputs(make([]float32, 64), 1, mpc.StageHash(mc, mpc.Params{}, 0, 2), 0, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(1), uint8(0xff), (&hop.MPCInput{Final: true, Body: in}).Append(nil))
	f.Add(uint8(1), uint8(hop.ChannelDeal), (&hop.MPCPrep{Body: as[0]}).Append(nil))
	f.Add(uint8(2), uint8(hop.ChannelDeal), (&hop.MPCPrep{More: true, Body: bs[0][:10]}).Append(nil))
	f.Add(uint8(1), uint8(hop.ChanPairBA), (&hop.MPCPeer{Body: hop.PeerAbort}).Append(nil))
	f.Add(uint8(4), uint8(hop.ChanData), (&hop.MPCReshare{Final: true, Body: in}).Append(nil))
	f.Add(uint8(5), uint8(hop.ChanDataB), (&hop.MPCReshare{Body: []byte{4}}).Append(nil))
	f.Add(uint8(0), uint8(0xff), (&hop.Deal{Step: 0, Rows: 2}).Append(nil))
	f.Add(uint8(0), uint8(0xff), (&hop.Deal{Step: 5, Rows: 1}).Append(nil))
	f.Add(uint8(4), uint8(0xff), (&hop.Truncate{}).Append(nil))
	f.Add(uint8(2), uint8(0xff), []byte{byte(hop.TypeSetup), 2, 2})
	svcs := []*hop.Service{dealerService(f), partyService(f, 0, 2), partyService(f, 0, 2), dealerService(f),
		partyService(f, 2, storiesLayers), partyService(f, 2, storiesLayers)}
	setups := confSetups(f, storiesRanges)
	var id uint64
	f.Fuzz(func(t *testing.T, pos, ch uint8, b []byte) {
		i := int(pos) % len(svcs)
		s, m := svcs[i], setups[i]
		id++
		r := newSyncRec(id)
		s.Deliver(r, hop.Inbound{Data: m.Append(nil)})
		if _, ok := r.next(t, 0).(*hop.SetupOK); !ok {
			t.Fatalf("hop %d refused its SETUP: %v", i, r.next(t, 0))
		}
		if ch == 0xff {
			s.Deliver(r, hop.Inbound{Data: append([]byte(nil), b...)})
		} else {
			c := hop.Channel(ch % 5)
			var sec *hop.EdgeSecret
			switch c {
			case hop.ChanData:
				sec = m.In
			case hop.ChanDataB:
				sec = m.InB
			case hop.ChanPairAB, hop.ChanPairBA:
				sec = m.Pair
			case hop.ChannelDeal:
				sec = m.Deal
				if m.Role == hop.RolePartyB {
					sec = m.DealB
				}
			}
			if sec == nil {
				sec = newSecret(t)
			}
			sl, _ := hop.NewSealer(sec, c)
			env, err := sl.Seal(nil, b)
			if err != nil {
				return // too long for an envelope
			}
			dir := cell.Forward
			if c == hop.ChanPairBA {
				dir = cell.Backward
			}
			s.Deliver(r, hop.Inbound{Edge: true, Dir: dir, Distance: 1, Data: env})
		}
		s.Deliver(r, hop.Inbound{Data: append([]byte(nil), b...)})
		s.Closed(r)
		if s.Sessions() != 0 {
			t.Fatal("session left after the circuit closed")
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.bad > 0 {
			t.Fatalf("hop %d sent %d undecodable messages", i, r.bad)
		}
	})
}
