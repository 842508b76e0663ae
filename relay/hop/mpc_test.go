package hop_test

import (
	"crypto/rand"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/hop/hoptest"
)

// storiesWeights reads the embedding and block 0 of stories260K.bin.
func storiesWeights(t testing.TB) *mpc.Weights {
	t.Helper()
	w, err := mpc.LoadWeights(modeltest.Path(t, "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// mpcChain is client → A → B → S1 [1,3) → S2 [3,5), in process.
type mpcChain struct {
	*client
	dealer *mpc.Dealer
}

// mpcServices makes A, B, S1 [1,3) and S2 [3,5); party applies to the
// configurations of A and B.
func mpcServices(t *testing.T, w *mpc.Weights, observe func(pos int, o hop.Observation), party ...func(*hop.Config)) []*hop.Service {
	var svcs []*hop.Service
	for i, role := range []hop.Role{hop.RoleMPCA, hop.RoleMPCB} {
		svcs = append(svcs, newService(t, nil, func(c *hop.Config) {
			c.AllowPlain = false
			c.Party = &hop.PartyConfig{Role: role, Weights: w}
			if observe != nil {
				c.Observe = func(o hop.Observation) { observe(i, o) }
			}
			for _, f := range party {
				f(c)
			}
		}))
	}
	s1, s2 := loadShard(t, 1, 3, model.Limits{}), loadShard(t, 3, 5, model.Limits{})
	return append(svcs, newService(t, s1, nil), newService(t, s2, nil))
}

func newMPCChain(t *testing.T, observe func(pos int, o hop.Observation), party ...func(*hop.Config)) *mpcChain {
	w := storiesWeights(t)
	svcs := mpcServices(t, w, observe, party...)
	hops := make([]hoptest.Hop, len(svcs))
	for i, s := range svcs {
		hops[i] = s
	}
	chain := hoptest.NewChain(11, hops...)
	t.Cleanup(chain.Close)
	return startMPC(t, chainClient(t, chain), w)
}

// startMPC sets up A, B, S1, S2 through c and makes the client's dealer.
func startMPC(t *testing.T, c *client, w *mpc.Weights) *mpcChain {
	aOut, bOut, pair, edge := newSecret(t), newSecret(t), newSecret(t), newSecret(t)
	setups := []*hop.Setup{
		{Role: hop.RoleMPCA, Input: hop.InputShares, First: 0, Last: 1, ModelID: modelID, Out: aOut, OutHops: 2, Pair: pair},
		{Role: hop.RoleMPCB, Input: hop.InputShares, First: 0, Last: 1, ModelID: modelID, Out: bOut, OutHops: 1, Pair: pair},
		{Role: hop.RoleCompute, Input: hop.InputShares, First: 1, Last: 3, ModelID: modelID, In: aOut, InB: bOut, Out: edge, OutHops: 1},
		{Role: hop.RoleCompute, Input: hop.InputActivations, First: 3, Last: 5, ModelID: modelID, In: edge, TopK: 1},
	}
	c.setupAll(setups)
	d, err := mpc.NewDealer(w.Config, mpc.Params{}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &mpcChain{client: c, dealer: d}
}

// prep sends the next step's PREP to both parties.
func (m *mpcChain) prep() {
	m.t.Helper()
	a, b, err := m.dealer.Prep()
	if err != nil {
		m.t.Fatal(err)
	}
	m.send(0, &hop.MPCStep{Body: a})
	m.send(1, &hop.MPCStep{Body: b})
}

// step shares ids with the pair and returns the LOGITS after the last one.
func (m *mpcChain) step(ids []int) *hop.Logits {
	m.t.Helper()
	start := m.dealer.Pos()
	for i, id := range ids {
		m.prep()
		a, b, err := m.dealer.Token(id)
		if err != nil {
			m.t.Fatal(err)
		}
		final := i == len(ids)-1
		m.send(0, &hop.MPCStep{Final: final, Body: a})
		m.send(1, &hop.MPCStep{Final: final, Body: b})
	}
	from, msg := m.recv()
	lg, ok := msg.(*hop.Logits)
	if !ok || from != 3 {
		m.t.Fatalf("hop %d answered with %v", from, msg)
	}
	if lg.Pos != start+len(ids)-1 {
		m.t.Fatalf("LOGITS for %d, want %d", lg.Pos, start+len(ids)-1)
	}
	return lg
}

// TestMPCChainGreedyMatchesLocal: token ids shared with the pair, block 0 in
// 2PC, S1 reconstructing, S2 returning logits: greedy generation matches the
// unsplit engine for 48 tokens.
func TestMPCChainGreedyMatchesLocal(t *testing.T) {
	ids := prompt(t)
	want, _ := localGreedy(t, ids, genTokens)
	var mu sync.Mutex
	seen := map[int][]hop.ObsKind{}
	m := newMPCChain(t, func(pos int, o hop.Observation) {
		mu.Lock()
		seen[pos] = append(seen[pos], o.Kind)
		mu.Unlock()
	})
	lg := m.step(ids)
	var got []int
	for range genTokens {
		next := greedy(lg)
		got = append(got, next)
		lg = m.step([]int{next})
	}
	if !slices.Equal(got, want) {
		t.Fatalf("MPC chain generated %v\nlocal generated %v", got, want)
	}
	// Both parties received their steps from the client and the other
	// party's messages over the pair edge.
	mu.Lock()
	defer mu.Unlock()
	for pos := range 2 {
		if !slices.Contains(seen[pos], hop.ObsClient) || !slices.Contains(seen[pos], hop.ObsEdgePlain) {
			t.Fatalf("party %d saw %v", pos, seen[pos])
		}
	}
}

func TestMPCStepErrors(t *testing.T) {
	m := newMPCChain(t, nil)
	m.step([]int{1})
	// A step message meant for B, sent to A: the party aborts with a typed
	// error.
	m.prep()
	_, b, err := m.dealer.Token(5)
	if err != nil {
		t.Fatal(err)
	}
	m.send(0, &hop.MPCStep{Final: true, Body: b})
	m.expectError(0, hop.CodeMPCFailure)
	// TRUNCATE is not something the MPC stage can do.
	m.send(1, &hop.Truncate{Pos: 0})
	m.expectError(1, hop.CodeUnsupported)
}

func TestPartySetupRefusals(t *testing.T) {
	w := storiesWeights(t)
	s := newService(t, nil, func(c *hop.Config) {
		c.AllowPlain = false
		c.Party = &hop.PartyConfig{Role: hop.RoleMPCA, Weights: w, MaxSessions: 1}
	})
	good := func() *hop.Setup {
		return &hop.Setup{Role: hop.RoleMPCA, Input: hop.InputShares, First: 0, Last: 1, ModelID: modelID,
			Out: newSecret(t), OutHops: 2, Pair: newSecret(t)}
	}
	mod := func(f func(*hop.Setup)) *hop.Setup { m := good(); f(m); return m }
	r := &rec{id: 1}
	cases := []struct {
		m    *hop.Setup
		code hop.Code
	}{
		{mod(func(m *hop.Setup) { m.Role = hop.RoleMPCB }), hop.CodeRangeNotServed},
		{mod(func(m *hop.Setup) {
			m.Role = hop.RoleCompute
			m.Input = hop.InputPlain
			m.Out, m.OutHops, m.Pair = nil, 0, nil
		}), hop.CodeRangeNotServed},
		{mod(func(m *hop.Setup) { m.Last = 2 }), hop.CodeRangeNotServed},
		{mod(func(m *hop.Setup) { m.Input = hop.InputPlain }), hop.CodeBadMessage},
		{mod(func(m *hop.Setup) { m.Pair = nil }), hop.CodeBadMessage},
		{mod(func(m *hop.Setup) { m.MaxContext = 4096 }), hop.CodeContextTooLong},
	}
	for _, c := range cases {
		wantCode(t, do(t, s, r, c.m), c.code)
	}
	if _, ok := do(t, s, r, good()).(*hop.SetupOK); !ok {
		t.Fatal("good party SETUP refused")
	}
	wantCode(t, do(t, s, &rec{id: 2}, good()), hop.CodeCapacity)
	s.Closed(r)
	if _, ok := do(t, s, &rec{id: 3}, good()).(*hop.SetupOK); !ok {
		t.Fatal("party slot not released")
	}
}

// TestSharesSetupChecks: the hop after the pair must start at layer 1 and
// hold both parties' keys.
func TestSharesSetupChecks(t *testing.T) {
	s := newService(t, loadShard(t, 1, 5, model.Limits{}), nil)
	m := &hop.Setup{Role: hop.RoleCompute, Input: hop.InputShares, First: 1, Last: 5, ModelID: modelID, In: newSecret(t)}
	wantCode(t, do(t, s, &rec{id: 1}, m), hop.CodeBadMessage)
	m.InB = newSecret(t)
	if _, ok := do(t, s, &rec{id: 2}, m).(*hop.SetupOK); !ok {
		t.Fatal("good S1 SETUP refused")
	}
	s2 := newService(t, loadShard(t, 2, 5, model.Limits{}), nil)
	m.First = 2
	wantCode(t, do(t, s2, &rec{id: 1}, m), hop.CodeBadMessage)
}

// TestPartyServiceDropsFloatWeights: a party service prepares the weights
// once and keeps no reference to the float weights it was given, so a relay
// holds one fixed-point copy for all its sessions and nothing more.
func TestPartyServiceDropsFloatWeights(t *testing.T) {
	w := storiesWeights(t)
	freed := make(chan struct{})
	runtime.SetFinalizer(w, func(*mpc.Weights) { close(freed) })
	svc := newService(t, nil, func(c *hop.Config) {
		c.AllowPlain = false
		c.Party = &hop.PartyConfig{Role: hop.RoleMPCA, Weights: w}
	})
	w = nil
	deadline := time.After(10 * time.Second)
	for done := false; !done; {
		runtime.GC()
		select {
		case <-freed:
			done = true
		case <-deadline:
			t.Fatal("the service still holds the float weights")
		case <-time.After(10 * time.Millisecond):
		}
	}
	runtime.KeepAlive(svc)
}

// TestMPCStepDoneReports: each party reports every completed step to the
// metrics hook, with the rounds of spec 05 §7 and a peer wait within the
// step's time.
func TestMPCStepDoneReports(t *testing.T) {
	var mu sync.Mutex
	got := map[mpc.Role][]mpc.Stats{}
	m := newMPCChain(t, nil, func(c *hop.Config) {
		c.MPCStepDone = func(r mpc.Role, st mpc.Stats) {
			mu.Lock()
			got[r] = append(got[r], st)
			mu.Unlock()
		}
	})
	m.step(prompt(t)[:3])
	m.step([]int{42})
	mu.Lock()
	defer mu.Unlock()
	for _, r := range []mpc.Role{mpc.RoleA, mpc.RoleB} {
		if len(got[r]) != 4 {
			t.Fatalf("party %s reported %d steps, want 4", r, len(got[r]))
		}
		for i, st := range got[r] {
			if st.Rounds != 19 || st.Time <= 0 || st.PeerWait < 0 || st.PeerWait > st.Time {
				t.Fatalf("party %s step %d: %+v", r, i, st)
			}
		}
	}
}

// TestMPCPrepRefused: a PREP the party cannot take (here B's, sent to A)
// ends the session with a typed error, like a failed step.
func TestMPCPrepRefused(t *testing.T) {
	m := newMPCChain(t, nil)
	m.step([]int{1})
	_, b, err := m.dealer.Prep()
	if err != nil {
		t.Fatal(err)
	}
	m.send(0, &hop.MPCStep{Body: b})
	m.expectError(0, hop.CodeMPCFailure)
}
