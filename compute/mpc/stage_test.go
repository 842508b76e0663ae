package mpc

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/model"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/mpc/mpctest"
	"github.com/unfed/unfed/compute/sample"
)

// stagePipeline is an in-memory confidential circuit: the client's ends, and
// per stage a dealer and two parties joined by a Pipe.
type stagePipeline struct {
	ends   *model.Ends
	stages []*stageRun
	step   uint32
	pos    int
	// mutate, if set, changes party A's and B's PREPs before delivery
	// (tests of the views).
	mutate func(stage int, a, b []byte)
	// pieces > 1 hands the PREPs over in that many pieces (PrepParts);
	// taken, if set, is called with them once the parties took them.
	pieces int
	taken  func(stage int, a, b []byte)
}

type stageRun struct {
	ps     *PreparedStage
	dealer *StageDealer
	a, b   *StageParty
	pa, pb *mpctest.Peer
}

func newStagePipeline(t testing.TB, path string, ranges [][2]int, seed uint64) *stagePipeline {
	t.Helper()
	ends, err := model.LoadEnds(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ends.Close() })
	sp := &stagePipeline{ends: ends}
	for i, r := range ranges {
		w, err := LoadStageWeights(path, r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		ps, err := PrepareStage(w, Params{})
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewStageDealer(w.Config, r[0], r[1], Params{}, 0, mpctest.NewRand(seed+uint64(i)))
		if err != nil {
			t.Fatal(err)
		}
		a, err := NewStageParty(RoleA, ps, Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewStageParty(RoleB, ps, Options{})
		if err != nil {
			t.Fatal(err)
		}
		pa, pb := mpctest.Pipe(64)
		pa.Keep, pb.Keep = true, true
		sp.stages = append(sp.stages, &stageRun{ps: ps, dealer: d, a: a, b: b, pa: pa, pb: pb})
	}
	return sp
}

// token runs one position through every stage and returns the hidden state
// the client reconstructs.
func (sp *stagePipeline) token(t testing.TB, id int) []float32 {
	return sp.batch(t, []int{id})
}

// batch runs the positions of ids through every stage as one step (a
// prompt's positions cross each stage together) and returns the hidden state
// of the last one.
func (sp *stagePipeline) batch(t testing.TB, ids []int) []float32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var x []float32
	for _, id := range ids {
		row, err := sp.ends.Embed(id)
		if err != nil {
			t.Fatal(err)
		}
		x = append(x, row...)
	}
	step, pos := sp.step, sp.pos
	inA, inB, err := ShareInputs(x, len(ids), sp.stages[0].ps.Hash(), step, pos)
	if err != nil {
		t.Fatal(err)
	}
	kind := ShareInput
	piecesA, piecesB := [][]byte{inA}, [][]byte{inB}
	var outA, outB []byte
	for i, st := range sp.stages {
		ma, mb, err := st.dealer.Next(len(ids))
		if err != nil {
			t.Fatal(err)
		}
		if sp.mutate != nil {
			sp.mutate(i, ma, mb)
		}
		if sp.pieces > 1 {
			if err := st.a.PrepParts(cut(ma, sp.pieces)); err != nil {
				t.Fatal(err)
			}
			if err := st.b.PrepParts(cut(mb, sp.pieces)); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := st.a.Prep(ma); err != nil {
				t.Fatal(err)
			}
			if err := st.b.Prep(mb); err != nil {
				t.Fatal(err)
			}
		}
		if sp.taken != nil {
			sp.taken(i, ma, mb)
		}
		xa, err := st.a.Input(kind, piecesA...)
		if err != nil {
			t.Fatal(err)
		}
		xb, err := st.b.Input(kind, piecesB...)
		if err != nil {
			t.Fatal(err)
		}
		ya, yb, err := stepBoth(ctx, st, xa, xb)
		if err != nil {
			t.Fatal(err)
		}
		if i == len(sp.stages)-1 {
			outA, outB = st.a.Output(ya, step, pos), st.b.Output(yb, step, pos)
			break
		}
		next := sp.stages[i+1].ps.Hash()
		sameA, otherA, err := st.a.Reshare(ya, step, pos, next)
		if err != nil {
			t.Fatal(err)
		}
		sameB, otherB, err := st.b.Reshare(yb, step, pos, next)
		if err != nil {
			t.Fatal(err)
		}
		kind = ShareReshare
		piecesA, piecesB = [][]byte{sameA, otherB}, [][]byte{sameB, otherA}
	}
	h, err := ReconstructOutputs(outB, outA, sp.stages[len(sp.stages)-1].ps.Hash(), step)
	if err != nil {
		t.Fatal(err)
	}
	sp.step++
	sp.pos += len(ids)
	return h
}

// cut cuts b into n pieces of about equal length.
func cut(b []byte, n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, b[i*len(b)/n:(i+1)*len(b)/n])
	}
	return out
}

func stepBoth(ctx context.Context, st *stageRun, xa, xb []uint64) (ya, yb []uint64, err error) {
	type res struct {
		y   []uint64
		err error
	}
	ca := make(chan res, 1)
	go func() {
		y, err := st.a.Step(ctx, xa, st.pa)
		ca <- res{y, err}
	}()
	yb, errB := st.b.Step(ctx, xb, st.pb)
	ra := <-ca
	return ra.y, yb, errors.Join(ra.err, errB)
}

// TestStageGreedyMatchesLocal runs stories260K in two confidential stages,
// [0, 2) and [2, 5), and checks that greedy decoding from the reconstructed
// hidden states equals the engine's local greedy decoding for 48 tokens,
// and reports how far the logits are from the engine's.
func TestStageGreedyMatchesLocal(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	prompt := storiesTokens(t, "Once upon a time")
	const gen = 48
	want, wantLogits := localGreedy(t, path, prompt, gen)

	sp := newStagePipeline(t, path, [][2]int{{0, 2}, {2, 5}}, 11)
	var got []int
	var worst float64
	var h []float32
	seq := append([]int(nil), prompt...)
	for i := 0; i < len(prompt)+gen-1; i++ {
		h = sp.token(t, seq[i])
		lg, err := sp.ends.Logits(h)
		if err != nil {
			t.Fatal(err)
		}
		worst = math.Max(worst, maxAbsDiff(lg, wantLogits[i]))
		if i >= len(prompt)-1 {
			next := sample.Argmax(lg)
			got = append(got, next)
			if i+1 >= len(seq) {
				seq = append(seq, next)
			}
		}
	}
	t.Logf("stories260K in 2 stages: max abs error of the logits %.4g over %d positions; %d rounds per token", worst, len(seq)-1, sp.stages[0].a.Stats().Rounds+sp.stages[1].a.Stats().Rounds)
	if !slicesEqual(got, want) {
		t.Fatalf("greedy through the stages differs from local:\n got %v\nwant %v", got, want)
	}
}

// localGreedy decodes gen tokens greedily with the engine over the whole
// model and returns them with the logits of every position fed.
func localGreedy(t testing.TB, path string, prompt []int, gen int) ([]int, [][]float32) {
	t.Helper()
	sh, err := model.Load(path, model.ShardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ss, err := sh.NewSession(model.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	var out []int
	var logits [][]float32
	seq := append([]int(nil), prompt...)
	for i := 0; i < len(prompt)+gen-1; i++ {
		lg, err := ss.ForwardTokens(seq[i:i+1], i)
		if err != nil {
			t.Fatal(err)
		}
		logits = append(logits, lg)
		if i >= len(prompt)-1 {
			next := sample.Argmax(lg)
			out = append(out, next)
			if i+1 >= len(seq) {
				seq = append(seq, next)
			}
		}
	}
	return out, logits
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestStageMessages checks the SHARE codec and the party's input checks.
func TestStageMessages(t *testing.T) {
	s := &Share{Kind: ShareReshare, Role: RoleB, Hash: [8]byte{1, 2, 3}, Step: 7, Pos: 9, Rows: 2, Dim: 3, Vals: []uint64{1, 1 << 63, 5, 0, 7, 9}}
	b := EncodeShare(s)
	got, err := DecodeShare(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(EncodeShare(got), b) {
		t.Fatal("share does not round-trip")
	}
	for _, bad := range [][]byte{b[:len(b)-1], append(append([]byte{}, b...), 0), {}, b[:shareHeader]} {
		if _, err := DecodeShare(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeShare(%d bytes): %v, want ErrMalformed", len(bad), err)
		}
	}
	v := append([]byte{}, b...)
	v[0] = 3
	if _, err := DecodeShare(v); !errors.Is(err, ErrVersion) {
		t.Errorf("version 3: %v", err)
	}
}

// TestStagePrefillMatchesTokens feeds a prompt through two stages as one
// batched step (every position crossing each stage together, so the rounds
// are per layer per batch) and checks the greedy continuation equals local
// decoding, as feeding it token by token does; the rounds of the batched
// step equal those of one token's.
func TestStagePrefillMatchesTokens(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	prompt := storiesTokens(t, "Once upon a time, there was a little girl named Lily.")
	const gen = 24
	want, wantLogits := localGreedy(t, path, prompt, gen)
	sp := newStagePipeline(t, path, [][2]int{{0, 2}, {2, 5}}, 5)
	h := sp.batch(t, prompt)
	roundsBatch := sp.stages[0].a.Stats().Rounds
	lg, err := sp.ends.Logits(h)
	if err != nil {
		t.Fatal(err)
	}
	worst := maxAbsDiff(lg, wantLogits[len(prompt)-1])
	var got []int
	for i := 0; i < gen; i++ {
		next := sample.Argmax(lg)
		got = append(got, next)
		if i == gen-1 {
			break
		}
		if lg, err = sp.ends.Logits(sp.token(t, next)); err != nil {
			t.Fatal(err)
		}
		worst = math.Max(worst, maxAbsDiff(lg, wantLogits[len(prompt)+i]))
	}
	if roundsToken := sp.stages[0].a.Stats().Rounds; roundsBatch != roundsToken {
		t.Errorf("a %d-position step took %d rounds, a one-token step %d", len(prompt), roundsBatch, roundsToken)
	}
	t.Logf("prompt of %d positions in one step (%d rounds in stage 1); max abs logit error %.4g", len(prompt), roundsBatch, worst)
	if !slicesEqual(got, want) {
		t.Fatalf("greedy after a batched prefill differs from local:\n got %v\nwant %v", got, want)
	}
}

// TestStageSizeAffine checks the PREP size model of stageSize against dry
// runs of the dealer at steps it was not fitted on.
func TestStageSizeAffine(t *testing.T) {
	for _, layers := range []int{1, 3} {
		z := newStageSize(storiesShape, Params{}.withDefaults(), layers)
		for _, tn := range [][2]int{{5, 3}, {0, 7}, {17, 1}, {40, 12}} {
			masks := make([][]uint64, layers)
			for i := range masks {
				masks[i] = make([]uint64, tn[0]*2*storiesShape.kvDim())
			}
			dl := &dealing{count: true}
			dealStage(dl, storiesShape, Params{}.withDefaults(), tn[0], tn[1], masks)
			if s, k := z.at(tn[0], tn[1]); s != dl.nShares || k != dl.nKeys {
				t.Fatalf("%d layers, t0 %d, %d rows: model %d/%d bytes, dealt %d/%d", layers, tn[0], tn[1], s, k, dl.nShares, dl.nKeys)
			}
		}
	}
}

// TestPrepareStageRefusesBadWeights: a stage's layers are checked as a whole
// model's are (length, NaN, the fixed-point range), naming the layer and
// the tensor, though a stage holds no embedding.
func TestPrepareStageRefusesBadWeights(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	for _, c := range []struct {
		name string
		bad  func(l *LayerWeights)
		want string
	}{
		{"nan", func(l *LayerWeights) { l.W1[5] = float32(math.NaN()) }, "layer 2: mpc: invalid configuration: w1 value NaN"},
		{"range", func(l *LayerWeights) { l.Wo[0] = 1 << 14 }, "layer 2: mpc: invalid configuration: wo value 16384"},
		{"short", func(l *LayerWeights) { l.Wq = l.Wq[:len(l.Wq)-1] }, "layer 2: mpc: invalid configuration: wq has"},
	} {
		w, err := LoadStageWeights(path, 1, 3)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := PrepareStage(w, Params{}); err != nil {
			t.Fatalf("%s: good weights refused: %v", c.name, err)
		}
		c.bad(&w.Layers[1])
		_, err = PrepareStage(w, Params{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// TestStageRounds counts the rounds of a step through stages of 2 and 3
// layers (spec/10 §5): 15 per layer, each truncation followed by a norm or
// by p·v giving that product its factor from its own opening (spec 05
// §6.10) and RoPE in the weights (spec 05 §4.2: no truncation of the norm's
// output), and one for the stage's first opening of its input (19 per
// layer in version 9).
func TestStageRounds(t *testing.T) {
	sp := newStagePipeline(t, modeltest.Path(t, "stories260K.gguf"), [][2]int{{0, 2}, {2, 5}}, 9)
	for _, tok := range storiesTokens(t, "Once upon")[:2] {
		sp.token(t, tok)
		for i, want := range []int{2*15 + 1, 3*15 + 1} {
			if got := sp.stages[i].a.Stats().Rounds; got != want {
				t.Errorf("stage %d: %d rounds, want %d", i, got, want)
			}
		}
	}
}

// TestDealerRecycle: a dealer that deals into PREP messages handed back
// (Recycle) deals exactly what one making new messages deals, even when
// the old bytes are not zero and the buffers are larger or too small.
func TestDealerRecycle(t *testing.T) {
	fresh, _ := NewStageDealer(smallCfg, 0, 2, Params{}, 0, mpctest.NewRand(5))
	reused, _ := NewStageDealer(smallCfg, 0, 2, Params{}, 0, mpctest.NewRand(5))
	dirty := func(n int) []byte { return bytes.Repeat([]byte{0xa5}, n) }
	for step, rows := range []int{3, 1, 1, 4, 1} {
		a, b, err := fresh.Next(rows)
		if err != nil {
			t.Fatal(err)
		}
		ra, rb, err := reused.Next(rows)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, ra) || !bytes.Equal(b, rb) {
			t.Fatalf("step %d: the PREPs dealt into recycled buffers differ", step)
		}
		switch step % 3 {
		case 0: // as dealt, dirtied
			copy(ra, dirty(len(ra)))
			copy(rb, dirty(len(rb)))
			reused.Recycle(ra, rb)
		case 1: // larger, dirty
			reused.Recycle(dirty(4*len(ra)), dirty(4*len(rb)))
		case 2: // too small for the next
			reused.Recycle(dirty(8), nil)
		}
	}
}

// TestDealerPause: a dealer with a pause calls it between the pieces of
// every step (several per layer) and deals exactly what one without does.
func TestDealerPause(t *testing.T) {
	plain, _ := NewStageDealer(smallCfg, 0, 2, Params{}, 0, mpctest.NewRand(5))
	paused, _ := NewStageDealer(smallCfg, 0, 2, Params{}, 0, mpctest.NewRand(5))
	calls := 0
	paused.SetPause(func() { calls++ })
	for step, rows := range []int{3, 1, 1} {
		a, b, err := plain.Next(rows)
		if err != nil {
			t.Fatal(err)
		}
		before := calls
		pa, pb, err := paused.Next(rows)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, pa) || !bytes.Equal(b, pb) {
			t.Fatalf("step %d: the PREPs dealt with pauses differ", step)
		}
		if n := calls - before; n < 2*2 {
			t.Fatalf("step %d: %d pauses for 2 layers, want several per layer", step, n)
		}
	}
}

// TestPrepNotRetained: a party copies out of a PREP what it keeps (its
// relay hands the message's buffer back for reuse once the PREP is taken,
// hop's partyRun.do): overwriting every PREP right after Prep or PrepParts
// leaves the outputs exactly as they are without it.
func TestPrepNotRetained(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	for _, pieces := range []int{1, 3} {
		clean := newStagePipeline(t, path, [][2]int{{0, 2}, {2, 5}}, 21)
		dirty := newStagePipeline(t, path, [][2]int{{0, 2}, {2, 5}}, 21)
		clean.pieces, dirty.pieces = pieces, pieces
		dirty.taken = func(_ int, a, b []byte) {
			for i := range a {
				a[i] = 0x5a
			}
			for i := range b {
				b[i] = 0xa5
			}
		}
		for _, ids := range [][]int{{1, 400, 22}, {7}, {300}} {
			want, got := clean.batch(t, ids), dirty.batch(t, ids)
			for i := range want {
				if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
					t.Fatalf("%d pieces: output %d is %v with the PREPs overwritten after they were taken, %v without", pieces, i, got[i], want[i])
				}
			}
		}
	}
}
