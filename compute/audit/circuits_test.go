package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/mpc"
	"github.com/unfed/unfed/compute/mpc/mpctest"
	"github.com/unfed/unfed/compute/sample"
	"github.com/unfed/unfed/relay/hop"
)

// In-memory circuits that write the capture records a relay with
// audit_capture would write, built with relay/hop's encoders and, for
// confidential circuits, compute/mpc's real stages.

var testSecret = &hop.EdgeSecret{1, 2, 3}

func rec(dir Dir, m interface{ Append([]byte) []byte }) Record {
	return Record{Dir: dir, Msg: m.Append(nil)}
}

// anonymousRequest builds the records of one request through an anonymous
// circuit guard → s0 [0, split) → s1 [split, N): the client sends the
// prompt as TOKENS to s0, then each generated token but the last; s0 sends
// the rows entering layer split to s1, which returns LOGITS (top-1 when
// topK, else dense). It returns the generated tokens and the records by
// relay name.
func anonymousRequest(t testing.TB, m *Model, path string, prompt []int, gen, split int, topK bool) ([]int, map[string][]Record) {
	t.Helper()
	n := len(prompt)
	nl := m.Config().NLayers
	generated, logits := greedy(t, path, prompt, gen)
	seq := append(append([]int(nil), prompt...), generated[:gen-1]...)
	rows := engineRows(t, m, path, split, seq)
	dim := m.Config().Dim
	flat := func(from, to int) []float32 {
		var out []float32
		for _, r := range rows[from:to] {
			out = append(out, r...)
		}
		return out
	}
	topk := 0
	if topK {
		topk = 1
	}
	s0 := []Record{
		rec(FromClient, &hop.Setup{Role: hop.RoleCompute, Input: hop.InputTokens, OutHops: 1, First: 0, Last: split, ModelID: "m", Out: testSecret}),
		rec(ToClient, &hop.SetupOK{First: 0, Last: split, Dim: dim, Vocab: m.Config().Vocab, MaxContext: 512, ModelID: "m"}),
		rec(FromClient, &hop.Tokens{Start: 0, IDs: prompt}),
	}
	s1 := []Record{
		rec(FromClient, &hop.Setup{Role: hop.RoleCompute, Input: hop.InputActivations, First: split, Last: nl, TopK: topk, ModelID: "m", In: testSecret}),
	}
	// The prompt's rows in two ACTIVATIONS, the second FINAL, the first in f16.
	half := n / 2
	for _, a := range []*hop.Activations{
		{Start: 0, N: half, Dim: dim, DType: hop.F16, Data: flat(0, half)},
		{Start: half, N: n - half, Dim: dim, Final: true, Data: flat(half, n)},
	} {
		s0 = append(s0, rec(ToEdge, a))
		s1 = append(s1, rec(FromEdge, a))
	}
	logitsMsg := func(pos int, lg []float32) *hop.Logits {
		if topK {
			return &hop.Logits{Pos: pos, TopK: []hop.Entry{{ID: sample.Argmax(lg), Value: lg[sample.Argmax(lg)]}}}
		}
		return &hop.Logits{Pos: pos, Dense: lg}
	}
	s1 = append(s1, rec(ToClient, logitsMsg(n-1, logits[0])))
	for j := 0; j < gen-1; j++ {
		p := n + j
		s0 = append(s0, rec(FromClient, &hop.Tokens{Start: p, IDs: []int{generated[j]}}))
		a := &hop.Activations{Start: p, N: 1, Dim: dim, Final: true, Data: flat(p, p+1)}
		s0 = append(s0, rec(ToEdge, a))
		s1 = append(s1, rec(FromEdge, a), rec(ToClient, logitsMsg(p, logits[j+1])))
	}
	s0 = append(s0, rec(FromClient, &hop.Teardown{}))
	s1 = append(s1, rec(FromClient, &hop.Teardown{}))
	return generated, map[string][]Record{"guard1": nil, "relay-s0": s0, "relay-s1": s1}
}

// confidential is a confidential circuit of real compute/mpc stages.
type confidential struct {
	ends   *model.Ends
	stages []*confStage
}

type confStage struct {
	first, last int
	w           *mpc.StageWeights
	ps          *mpc.PreparedStage
}

func newConfidential(t testing.TB, path string, ranges [][2]int) *confidential {
	t.Helper()
	ends, err := model.LoadEnds(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ends.Close() })
	c := &confidential{ends: ends}
	for _, r := range ranges {
		w, err := mpc.LoadStageWeights(path, r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		ps, err := mpc.PrepareStage(w, mpc.Params{})
		if err != nil {
			t.Fatal(err)
		}
		c.stages = append(c.stages, &confStage{first: r[0], last: r[1], w: w, ps: ps})
	}
	return c
}

// recPeer is one end of an in-memory party pipe that records every peer
// message as its relay would: sent ones as ToEdge, received as FromEdge.
type recPeer struct {
	in   <-chan []byte
	out  chan<- []byte
	mu   sync.Mutex
	recs []Record
}

func recPipe() (*recPeer, *recPeer) {
	ab, ba := make(chan []byte, 64), make(chan []byte, 64)
	return &recPeer{in: ba, out: ab}, &recPeer{in: ab, out: ba}
}

func (p *recPeer) Send(ctx context.Context, msg []byte) error {
	p.mu.Lock()
	p.recs = append(p.recs, rec(ToEdge, &hop.MPCPeer{Body: msg}))
	p.mu.Unlock()
	select {
	case p.out <- append([]byte(nil), msg...):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *recPeer) Recv(ctx context.Context) ([]byte, error) {
	select {
	case m := <-p.in:
		p.mu.Lock()
		p.recs = append(p.recs, rec(FromEdge, &hop.MPCPeer{Body: m}))
		p.mu.Unlock()
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *recPeer) take() []Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.recs
	p.recs = nil
	return r
}

// Leaks a test can plant in the records, to check the analysis finds what
// a broken protocol would expose.
type leak int

const (
	noLeak leak = iota
	// leakInput: party A of stage 1 records the client's input in the
	// clear (its MPC_INPUT holds the whole fixed-point embedding row).
	leakInput
	// leakReshare: party A of stage 2 records both stage-1 output shares
	// as its two RESHARE pieces, whose sum is the residual stream.
	leakReshare
	// leakPeer: party A of stage 1 records, in place of the first peer
	// message it receives in each step, one holding the step's input rows
	// in the clear (the whole batch, one row per position).
	leakPeer
)

// request runs one request through the circuit as the client does: the
// prompt in one step (one batch of positions), then greedy generation of
// gen tokens, each but the last fed back as a step of its own. It returns the generated tokens and the records
// every relay wrote, by relay name.
func (c *confidential) request(t testing.TB, prompt []int, gen int, lk leak) ([]int, map[string][]Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	k := len(c.stages)
	recs := map[string][]Record{"guard1": nil}
	name := func(role string, i int) string { return "relay-" + role + string(rune('1'+i)) }
	type parties struct {
		dealer *mpc.StageDealer
		a, b   *mpc.StageParty
		pa, pb *recPeer
	}
	ps := make([]parties, k)
	for i, st := range c.stages {
		d, err := mpc.NewStageDealer(st.w.Config, st.first, st.last, mpc.Params{}, 0, mpctest.NewRand(uint64(100+i)))
		if err != nil {
			t.Fatal(err)
		}
		a, err := mpc.NewStageParty(mpc.RoleA, st.ps, mpc.Options{PrecomputeBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		b, err := mpc.NewStageParty(mpc.RoleB, st.ps, mpc.Options{PrecomputeBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		pa, pb := recPipe()
		ps[i] = parties{d, a, b, pa, pb}
		recs[name("d", i)] = append(recs[name("d", i)], rec(FromClient, &hop.Setup{Role: hop.RoleDealer, Input: hop.InputNone,
			First: st.first, Last: st.last, ModelID: "m", Deal: testSecret, DealB: testSecret}))
		for _, side := range []hop.Role{hop.RolePartyA, hop.RolePartyB} {
			s := &hop.Setup{Role: side, Input: hop.InputShares, First: st.first, Last: st.last, ModelID: "m", Pair: testSecret}
			if side == hop.RolePartyA {
				s.Deal = testSecret
			} else {
				s.DealB = testSecret
			}
			if i > 0 {
				s.In, s.InB = testSecret, testSecret
			}
			if i < k-1 {
				s.Out, s.OutB, s.OutHops, s.NextLast = testSecret, testSecret, 3, c.stages[i+1].last
			}
			role := map[hop.Role]string{hop.RolePartyA: "a", hop.RolePartyB: "b"}[side]
			recs[name(role, i)] = append(recs[name(role, i)], rec(FromClient, s))
		}
	}
	seq := append([]int(nil), prompt...)
	var generated []int
	// Step 0 is the whole prompt, as the client sends it; every later step
	// one generated token.
	for step, pos := 0, 0; len(generated) < gen; step++ {
		rows := 1
		if step == 0 {
			rows = len(prompt)
		}
		final := true
		var x []float32
		for _, id := range seq[pos : pos+rows] {
			e, err := c.ends.Embed(id)
			if err != nil {
				t.Fatal(err)
			}
			x = append(x, e...)
		}
		inA, inB, err := mpc.ShareInputs(x, rows, c.stages[0].ps.Hash(), uint32(step), pos)
		if err != nil {
			t.Fatal(err)
		}
		if lk == leakInput {
			recs[name("a", 0)] = append(recs[name("a", 0)], rec(FromClient, &hop.MPCInput{Final: final,
				Body: mpc.EncodeShare(&mpc.Share{Kind: mpc.ShareInput, Role: mpc.RoleA, Hash: c.stages[0].ps.Hash(),
					Step: uint32(step), Pos: uint32(pos), Rows: rows, Dim: len(x) / rows, Vals: FloatToFixed(x, FixedScale)})}))
		} else {
			recs[name("a", 0)] = append(recs[name("a", 0)], rec(FromClient, &hop.MPCInput{Final: final, Body: inA}))
		}
		recs[name("b", 0)] = append(recs[name("b", 0)], rec(FromClient, &hop.MPCInput{Final: final, Body: inB}))
		kind := mpc.ShareInput
		piecesA, piecesB := [][]byte{inA}, [][]byte{inB}
		var outA, outB []byte
		for i := range c.stages {
			p := ps[i]
			recs[name("d", i)] = append(recs[name("d", i)], rec(FromClient, &hop.Deal{Step: step, Rows: rows}))
			ma, mb, err := p.dealer.Next(rows)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range hop.SplitPrep(ma, 0) {
				recs[name("d", i)] = append(recs[name("d", i)], rec(ToEdge, f))
				recs[name("a", i)] = append(recs[name("a", i)], rec(FromEdge, f))
			}
			for _, f := range hop.SplitPrep(mb, 0) {
				recs[name("d", i)] = append(recs[name("d", i)], rec(ToEdge, f))
				recs[name("b", i)] = append(recs[name("b", i)], rec(FromEdge, f))
			}
			if err := p.a.Prep(ma); err != nil {
				t.Fatal(err)
			}
			if err := p.b.Prep(mb); err != nil {
				t.Fatal(err)
			}
			xa, err := p.a.Input(kind, piecesA...)
			if err != nil {
				t.Fatal(err)
			}
			xb, err := p.b.Input(kind, piecesB...)
			if err != nil {
				t.Fatal(err)
			}
			var ya, yb []uint64
			var errA error
			done := make(chan struct{})
			go func() {
				ya, errA = p.a.Step(ctx, xa, p.pa)
				close(done)
			}()
			yb, errB := p.b.Step(ctx, xb, p.pb)
			<-done
			if err := errors.Join(errA, errB); err != nil {
				t.Fatal(err)
			}
			peerRecs := p.pa.take()
			if lk == leakPeer && i == 0 {
				for j, r := range peerRecs {
					if r.Dir == FromEdge {
						b := append([]byte(nil), r.Msg[1:13]...)
						binary.BigEndian.PutUint32(b[8:], uint32(len(x)))
						for _, v := range FloatToFixed(x, FixedScale) {
							b = binary.BigEndian.AppendUint64(b, v)
						}
						peerRecs[j] = rec(FromEdge, &hop.MPCPeer{Body: b})
						break
					}
				}
			}
			recs[name("a", i)] = append(recs[name("a", i)], peerRecs...)
			recs[name("b", i)] = append(recs[name("b", i)], p.pb.take()...)
			if i == k-1 {
				outA, outB = p.a.Output(ya, uint32(step), pos), p.b.Output(yb, uint32(step), pos)
				recs[name("a", i)] = append(recs[name("a", i)], rec(ToClient, &hop.MPCOutput{Final: true, Body: outA}))
				recs[name("b", i)] = append(recs[name("b", i)], rec(ToClient, &hop.MPCOutput{Final: true, Body: outB}))
				break
			}
			next := c.stages[i+1].ps.Hash()
			sameA, otherA, err := p.a.Reshare(ya, uint32(step), pos, next)
			if err != nil {
				t.Fatal(err)
			}
			sameB, otherB, err := p.b.Reshare(yb, uint32(step), pos, next)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range [][]byte{sameA, otherA} {
				recs[name("a", i)] = append(recs[name("a", i)], rec(ToEdge, &hop.MPCReshare{Final: final, Body: m}))
			}
			for _, m := range [][]byte{sameB, otherB} {
				recs[name("b", i)] = append(recs[name("b", i)], rec(ToEdge, &hop.MPCReshare{Final: final, Body: m}))
			}
			piecesA, piecesB = [][]byte{sameA, otherB}, [][]byte{sameB, otherA}
			inPieces := piecesA
			if lk == leakReshare && i == 0 {
				share := func(v []uint64) []byte {
					return mpc.EncodeShare(&mpc.Share{Kind: mpc.ShareReshare, Role: mpc.RoleA, Hash: next, Step: uint32(step),
						Pos: uint32(pos), Rows: rows, Dim: len(v) / rows, Vals: v})
				}
				inPieces = [][]byte{share(ya), share(yb)}
			}
			for _, m := range inPieces {
				recs[name("a", i+1)] = append(recs[name("a", i+1)], rec(FromEdge, &hop.MPCReshare{Final: final, Body: m}))
			}
			for _, m := range piecesB {
				recs[name("b", i+1)] = append(recs[name("b", i+1)], rec(FromEdge, &hop.MPCReshare{Final: final, Body: m}))
			}
			kind = mpc.ShareReshare
		}
		h, err := mpc.ReconstructOutputs(outA, outB, c.stages[k-1].ps.Hash(), uint32(step))
		if err != nil {
			t.Fatal(err)
		}
		lg, err := c.ends.Logits(h)
		if err != nil {
			t.Fatal(err)
		}
		next := sample.Argmax(lg)
		generated = append(generated, next)
		seq = append(seq, next)
		pos += rows
	}
	for r := range recs {
		if r != "guard1" {
			recs[r] = append(recs[r], rec(FromClient, &hop.Teardown{}))
		}
	}
	return generated, recs
}
