package hop_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/relay/cell"
	"github.com/unfed/unfed/relay/hop"
	"github.com/unfed/unfed/relay/hop/hoptest"
)

// rec is a hop.Circuit that records what the hop sends; with Deliver called
// directly it makes the handler's behaviour deterministic to test.
type rec struct {
	id    uint64
	sent  [][]byte
	edges []edgeSend
	fail  bool
}

type edgeSend struct {
	dir  cell.Direction
	hops int
	data []byte
}

func (r *rec) ID() uint64 { return r.id }

func (r *rec) Send(_ context.Context, msg []byte) error {
	if r.fail {
		return errors.New("circuit gone")
	}
	r.sent = append(r.sent, append([]byte(nil), msg...))
	return nil
}

func (r *rec) SendEdge(_ context.Context, dir cell.Direction, hops int, msg []byte) error {
	if r.fail {
		return errors.New("circuit gone")
	}
	r.edges = append(r.edges, edgeSend{dir, hops, append([]byte(nil), msg...)})
	return nil
}

// do delivers m to s on r and returns the one reply it caused, or nil.
func do(t *testing.T, s *hop.Service, r *rec, m hop.Msg) hop.Msg {
	t.Helper()
	return deliverRaw(t, s, r, m.Append(nil))
}

func deliverRaw(t *testing.T, s *hop.Service, r *rec, b []byte) hop.Msg {
	t.Helper()
	n := len(r.sent)
	s.Deliver(r, hop.Inbound{Data: b})
	switch len(r.sent) - n {
	case 0:
		return nil
	case 1:
		m, err := hop.Decode(r.sent[n])
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Fatalf("%d replies to one message", len(r.sent)-n)
	return nil
}

func wantCode(t *testing.T, m hop.Msg, code hop.Code) {
	t.Helper()
	e, ok := m.(*hop.Error)
	if !ok || e.Code != code {
		t.Fatalf("got %v, want ERROR %v", m, code)
	}
}

func wholeSetup() *hop.Setup {
	return &hop.Setup{Role: hop.RoleCompute, Input: hop.InputTokens, First: 0, Last: 5, ModelID: modelID, TopK: 3}
}

func TestSetupRefusals(t *testing.T) {
	sh := loadShard(t, 0, 5, model.Limits{MaxContext: 64})
	s := newService(t, sh, nil)
	r := &rec{id: 1}
	mod := func(f func(*hop.Setup)) *hop.Setup {
		m := wholeSetup()
		f(m)
		return m
	}
	cases := []struct {
		m    hop.Msg
		code hop.Code
	}{
		{&hop.Tokens{IDs: []int{1}}, hop.CodeBadMessage},
		{mod(func(m *hop.Setup) { m.ModelID = "other" }), hop.CodeWrongModel},
		{mod(func(m *hop.Setup) { m.Last = 3 }), hop.CodeRangeNotServed},
		{mod(func(m *hop.Setup) { m.Role = hop.RolePartyA }), hop.CodeRangeNotServed},
		{mod(func(m *hop.Setup) { m.Role = hop.RoleDealer }), hop.CodeRangeNotServed},
		{mod(func(m *hop.Setup) { m.MaxContext = 65 }), hop.CodeContextTooLong},
		{mod(func(m *hop.Setup) { m.Out, m.OutHops = newSecret(t), 1 }), hop.CodeBadMessage},
		{mod(func(m *hop.Setup) { m.In = newSecret(t) }), hop.CodeBadMessage},
		{mod(func(m *hop.Setup) { m.Input = hop.InputActivations }), hop.CodeBadMessage},
		{mod(func(m *hop.Setup) { m.Pair = newSecret(t) }), hop.CodeBadMessage},
		{mod(func(m *hop.Setup) { m.Deal = newSecret(t) }), hop.CodeBadMessage},
		{mod(func(m *hop.Setup) { m.Input = hop.InputShares }), hop.CodeBadMessage},
		{mod(func(m *hop.Setup) { m.Input = hop.InputNone }), hop.CodeBadMessage},
	}
	for i, c := range cases {
		wantCode(t, do(t, s, r, c.m), c.code)
		if sh.MemoryUsed() != 0 || s.Sessions() != 1 {
			t.Fatalf("case %d left state behind", i)
		}
	}
	// Version 1 (the entry-pair protocol) and unknown types, among them
	// the removed MPC_STEP, are unsupported, not fatal.
	v1 := wholeSetup().Append(nil)
	v1[1] = 1
	wantCode(t, deliverRaw(t, s, r, v1), hop.CodeUnsupported)
	wantCode(t, deliverRaw(t, s, r, []byte{0x42}), hop.CodeUnsupported)
	wantCode(t, deliverRaw(t, s, r, []byte{0x03, 1, 2}), hop.CodeUnsupported)
	wantCode(t, deliverRaw(t, s, r, []byte{byte(hop.TypeSetup)}), hop.CodeBadMessage)

	// After all that, a good SETUP still works.
	ok, isOK := do(t, s, r, mod(func(m *hop.Setup) { m.MaxContext = 32 })).(*hop.SetupOK)
	if !isOK || ok.Dim != 64 || ok.Vocab != 512 || ok.MaxContext != 32 || ok.First != 0 || ok.Last != 5 {
		t.Fatalf("SETUP_OK %+v", ok)
	}
	// A second SETUP is a fatal protocol error: the session ends.
	wantCode(t, do(t, s, r, wholeSetup()), hop.CodeBadMessage)
	if m := do(t, s, r, &hop.Tokens{IDs: []int{1}}); m != nil {
		t.Fatalf("closed session answered %v", m)
	}
}

func TestPlainRefusedByDefault(t *testing.T) {
	s := newService(t, loadShard(t, 0, 5, model.Limits{}), func(c *hop.Config) { c.AllowPlain = false })
	wantCode(t, do(t, s, &rec{}, wholeSetup()), hop.CodeInsecureRefused)
}

func TestPlainNeedsFirstShard(t *testing.T) {
	s := newService(t, loadShard(t, 2, 5, model.Limits{}), nil)
	m := wholeSetup()
	m.First = 2
	wantCode(t, do(t, s, &rec{}, m), hop.CodeBadMessage)
}

func TestTokensChecks(t *testing.T) {
	s := newService(t, loadShard(t, 0, 5, model.Limits{}), nil)
	r := &rec{}
	do(t, s, r, wholeSetup())
	wantCode(t, do(t, s, r, &hop.Tokens{IDs: []int{512}}), hop.CodeBadMessage)
	r2 := &rec{id: 2}
	do(t, s, r2, wholeSetup())
	wantCode(t, do(t, s, r2, &hop.Tokens{Start: 1, IDs: []int{1}}), hop.CodeBadMessage)
	r3 := &rec{id: 3}
	do(t, s, r3, wholeSetup())
	if _, ok := do(t, s, r3, &hop.Tokens{IDs: []int{1, 2}}).(*hop.Logits); !ok {
		t.Fatal("no LOGITS")
	}
	wantCode(t, do(t, s, r3, &hop.Truncate{Pos: 3}), hop.CodeBadMessage)
}

// TestContextTooLongRecovers: a forward pass past the limit is refused with
// context-too-long; the session survives, and after TRUNCATE the client can
// replay and get the same logits as a fresh session.
func TestContextTooLongRecovers(t *testing.T) {
	s := newService(t, loadShard(t, 0, 5, model.Limits{}), nil)
	r := &rec{}
	m := wholeSetup()
	m.MaxContext, m.TopK = 8, 0
	do(t, s, r, m)
	ids := prompt(t)
	if _, ok := do(t, s, r, &hop.Tokens{IDs: ids}).(*hop.Logits); !ok {
		t.Fatal("no LOGITS for the prompt")
	}
	wantCode(t, do(t, s, r, &hop.Tokens{Start: len(ids), IDs: []int{5, 6, 7, 8}}), hop.CodeContextTooLong)
	if m := do(t, s, r, &hop.Truncate{Pos: 3}); m != nil {
		t.Fatalf("TRUNCATE answered %v", m)
	}
	replay := append(append([]int(nil), ids[3:]...), 5, 6)
	got, ok := do(t, s, r, &hop.Tokens{Start: 3, IDs: replay}).(*hop.Logits)
	if !ok || got.Pos != 3+len(replay)-1 {
		t.Fatalf("after truncate: %v", got)
	}
	fresh := &rec{id: 9}
	do(t, s, fresh, m)
	want := do(t, s, fresh, &hop.Tokens{IDs: append(ids[:3:3], replay...)}).(*hop.Logits)
	for i := range want.Dense {
		if want.Dense[i] != got.Dense[i] {
			t.Fatalf("replayed logit %d: %v, fresh %v", i, got.Dense[i], want.Dense[i])
		}
	}
}

func TestCapacityAndRelease(t *testing.T) {
	sh := loadShard(t, 0, 5, model.Limits{MaxSessions: 1})
	s := newService(t, sh, nil)
	a, b := &rec{id: 1}, &rec{id: 2}
	do(t, s, a, wholeSetup())
	wantCode(t, do(t, s, b, wholeSetup()), hop.CodeCapacity)
	do(t, s, a, &hop.Tokens{IDs: []int{1, 2, 3}})
	if sh.MemoryUsed() == 0 {
		t.Fatal("no KV cache after a forward pass")
	}
	if m := do(t, s, a, &hop.Teardown{}); m != nil {
		t.Fatalf("TEARDOWN answered %v", m)
	}
	if sh.MemoryUsed() != 0 {
		t.Fatal("TEARDOWN kept the KV cache")
	}
	if m := do(t, s, a, &hop.Tokens{IDs: []int{1}}); m != nil {
		t.Fatalf("torn-down session answered %v", m)
	}
	if _, ok := do(t, s, b, wholeSetup()).(*hop.SetupOK); !ok {
		t.Fatal("slot not released by TEARDOWN")
	}
	s.Closed(b)
	c := &rec{id: 3}
	if _, ok := do(t, s, c, wholeSetup()).(*hop.SetupOK); !ok {
		t.Fatal("slot not released by Closed")
	}
	s.Close()
	if s.Sessions() != 0 || sh.MemoryUsed() != 0 {
		t.Fatal("Close left sessions")
	}
	if m := do(t, s, c, &hop.Tokens{IDs: []int{1}}); m != nil {
		t.Fatalf("closed service answered %v", m)
	}
}

func TestSendFailureEndsSession(t *testing.T) {
	sh := loadShard(t, 0, 5, model.Limits{MaxSessions: 1})
	s := newService(t, sh, nil)
	r := &rec{}
	do(t, s, r, wholeSetup())
	r.fail = true
	s.Deliver(r, hop.Inbound{Data: (&hop.Tokens{IDs: []int{1}}).Append(nil)})
	if _, ok := do(t, s, &rec{id: 5}, wholeSetup()).(*hop.SetupOK); !ok {
		t.Fatal("a session whose circuit failed kept its slot")
	}
}

// TestEdgeChecks drives a middle hop with hand-made envelopes.
func TestEdgeChecks(t *testing.T) {
	s := newService(t, loadShard(t, 2, 5, model.Limits{}), nil)
	in := newSecret(t)
	setup := &hop.Setup{Role: hop.RoleCompute, Input: hop.InputActivations, First: 2, Last: 5, ModelID: modelID, TopK: 1, In: in}
	row := make([]float32, 64)
	for i := range row {
		row[i] = float32(i%7) - 3
	}
	edge := func(r *rec, dir cell.Direction, env []byte) hop.Msg {
		n := len(r.sent)
		s.Deliver(r, hop.Inbound{Edge: true, Dir: dir, Distance: 1, Data: env})
		if len(r.sent) == n {
			return nil
		}
		m, _ := hop.Decode(r.sent[len(r.sent)-1])
		return m
	}
	seal := func(sec *hop.EdgeSecret, ch hop.Channel, m hop.EdgeMsg, n int) [][]byte {
		sl, _ := hop.NewSealer(sec, ch)
		var out [][]byte
		for range n {
			env, _ := sl.Seal(nil, m.Append(nil))
			out = append(out, env)
		}
		return out
	}
	act := &hop.Activations{N: 1, Dim: 64, Final: true, Data: row}

	// Before SETUP.
	r := &rec{id: 1}
	wantCode(t, edge(r, cell.Forward, seal(in, hop.ChanData, act, 1)[0]), hop.CodeBadMessage)

	// Good, then replayed.
	do(t, s, r, setup)
	envs := seal(in, hop.ChanData, act, 1)
	replay := append([]byte(nil), envs[0]...)
	if _, ok := edge(r, cell.Forward, envs[0]).(*hop.Logits); !ok {
		t.Fatal("no LOGITS for a good edge message")
	}
	wantCode(t, edge(r, cell.Forward, replay), hop.CodeEdgeAuth)

	cases := map[string]func(r *rec) hop.Msg{
		"reordered": func(r *rec) hop.Msg {
			return edge(r, cell.Forward, seal(in, hop.ChanData, act, 2)[1])
		},
		"wrong key": func(r *rec) hop.Msg {
			return edge(r, cell.Forward, seal(newSecret(t), hop.ChanData, act, 1)[0])
		},
		"no such channel": func(r *rec) hop.Msg {
			return edge(r, cell.Forward, seal(in, hop.ChanPairAB, act, 1)[0])
		},
		"backward": func(r *rec) hop.Msg {
			return edge(r, cell.Backward, seal(in, hop.ChanData, act, 1)[0])
		},
	}
	for name, f := range cases {
		r := &rec{id: 10}
		do(t, s, r, setup)
		m := f(r)
		if e, ok := m.(*hop.Error); !ok || e.Code != hop.CodeEdgeAuth {
			t.Errorf("%s: %v", name, m)
		}
		s.Closed(r)
	}
	bad := map[string]hop.EdgeMsg{
		"width":    &hop.Activations{N: 1, Dim: 32, Data: row[:32]},
		"position": &hop.Activations{Start: 4, N: 1, Dim: 64, Data: row},
		"peer":     &hop.MPCPeer{Body: []byte{1}},
	}
	for name, m := range bad {
		r := &rec{id: 11}
		do(t, s, r, setup)
		if e, ok := edge(r, cell.Forward, seal(in, hop.ChanData, m, 1)[0]).(*hop.Error); !ok || e.Code != hop.CodeBadMessage {
			t.Errorf("%s: %v", name, e)
		}
		s.Closed(r)
	}
}

// TestChainEdgeReplay: a duplicated edge message in a running chain reaches
// the client as a typed edge-auth error from the hop that received it.
func TestChainEdgeReplay(t *testing.T) {
	shards := []*model.Shard{loadShard(t, 0, 2, model.Limits{}), loadShard(t, 2, 5, model.Limits{})}
	second := newService(t, shards[1], nil)
	chain := hoptest.NewChain(3, newService(t, shards[0], nil), duplicateEdges{second})
	defer chain.Close()
	c := chainClient(t, chain)
	c.setupAll(plainSetups(t, shards, hop.F32, 1))
	c.logits(0, prompt(t))
	c.expectError(1, hop.CodeEdgeAuth)
}

type duplicateEdges struct{ *hop.Service }

func (d duplicateEdges) Deliver(c hop.Circuit, m hop.Inbound) {
	if !m.Edge {
		d.Service.Deliver(c, m)
		return
	}
	dup := m
	dup.Data = append([]byte(nil), m.Data...)
	d.Service.Deliver(c, m)
	d.Service.Deliver(c, dup)
}

// FuzzComputeService: whatever a client or a neighbour sends, a hop answers
// with at most one message per input that decodes, and never panics.
func FuzzComputeService(f *testing.F) {
	f.Add((&hop.Tokens{IDs: []int{1, 2}}).Append(nil), false)
	f.Add((&hop.Tokens{Start: 1, IDs: []int{600}}).Append(nil), false)
	f.Add((&hop.Truncate{Pos: 0}).Append(nil), false)
	f.Add((&hop.Teardown{}).Append(nil), false)
	f.Add((&hop.MPCInput{Body: []byte{1}}).Append(nil), false)
	f.Add((&hop.Deal{Rows: 1}).Append(nil), false)
	f.Add(wholeSetup().Append(nil), false)
	f.Add([]byte{0, 1, 2, 3}, true)
	f.Add([]byte{byte(hop.ChanPairBA)}, true)
	sh := loadShard(f, 0, 5, model.Limits{MaxContext: 64})
	s := newService(f, sh, nil)
	var id uint64
	f.Fuzz(func(t *testing.T, b []byte, edge bool) {
		id++
		r := &rec{id: id}
		s.Deliver(r, hop.Inbound{Data: wholeSetup().Append(nil)})
		s.Deliver(r, hop.Inbound{Edge: edge, Data: append([]byte(nil), b...)})
		s.Deliver(r, hop.Inbound{Data: append([]byte(nil), b...)})
		if len(r.sent) > 3 || len(r.edges) > 0 {
			t.Fatalf("%d replies, %d edge messages", len(r.sent), len(r.edges))
		}
		for _, m := range r.sent {
			if _, err := hop.Decode(m); err != nil {
				t.Fatalf("hop sent an undecodable reply: %v", err)
			}
		}
		s.Closed(r)
		if sh.MemoryUsed() != 0 {
			t.Fatal("KV cache left after the circuit closed")
		}
	})
}

// TestComputeDoneHook: each forward pass of the shard is reported with its
// positions, the relay's compute-time metric hook.
func TestComputeDoneHook(t *testing.T) {
	var mu sync.Mutex
	var passes []int
	s := newService(t, loadShard(t, 0, 5, model.Limits{}), func(c *hop.Config) {
		c.ComputeDone = func(n int, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			if d <= 0 {
				t.Errorf("pass of %d positions took %v", n, d)
			}
			passes = append(passes, n)
		}
	})
	r := &rec{}
	do(t, s, r, wholeSetup())
	do(t, s, r, &hop.Tokens{IDs: []int{1, 2, 3}})
	do(t, s, r, &hop.Tokens{Start: 3, IDs: []int{4}})
	wantCode(t, do(t, s, r, &hop.Tokens{Start: 4, IDs: []int{512}}), hop.CodeBadMessage)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(passes) != "[3 1]" {
		t.Fatalf("passes %v, want [3 1]", passes)
	}
}
