package mpc

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/sample"
)

// TestStepStateResume runs stories260K in two stages, records every step's
// STATE messages of every party and dealer, checks that the parties'
// opened rows agree and that each party's mask rows are the ones its dealer
// dealt, then replaces every party by one resumed from the states of the
// steps so far (ResumeStageParty): its caches are the original's, and the
// session continues with them to the engine's greedy tokens.
func TestStepStateResume(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	prompt := storiesTokens(t, "Once upon a time")
	const gen = 8
	want, _ := localGreedy(t, path, prompt, gen)
	sp := newStagePipeline(t, path, [][2]int{{0, 2}, {2, 5}}, 5)
	type states struct{ opened, masks [][]byte }
	rec := make([][2]states, len(sp.stages))
	record := func() {
		t.Helper()
		for i, st := range sp.stages {
			for r, p := range []*StageParty{st.a, st.b} {
				op, err := p.StepState(StateOpened)
				if err != nil {
					t.Fatal(err)
				}
				ms, err := p.StepState(StateMasks)
				if err != nil {
					t.Fatal(err)
				}
				dm, err := st.dealer.StepMasks(Role(r))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(ms, dm) {
					t.Fatalf("stage %d party %s: mask rows differ from the dealer's", i, Role(r))
				}
				rec[i][r].opened = append(rec[i][r].opened, op)
				rec[i][r].masks = append(rec[i][r].masks, ms)
			}
			if !bytes.Equal(rec[i][0].opened[len(rec[i][0].opened)-1], rec[i][1].opened[len(rec[i][1].opened)-1]) {
				t.Fatalf("stage %d: the parties' opened rows differ", i)
			}
		}
	}
	// The prompt as one step, then a token per step.
	h := sp.batch(t, prompt)
	record()
	var got []int
	for len(got) < gen {
		lg, err := sp.ends.Logits(h)
		if err != nil {
			t.Fatal(err)
		}
		next := sample.Argmax(lg)
		got = append(got, next)
		if len(got) == 3 {
			// Resume every party from the states of the steps so far.
			for i, st := range sp.stages {
				for r, p := range []**StageParty{&st.a, &st.b} {
					q, err := ResumeStageParty(Role(r), st.ps, Options{}, rec[i][r].opened, rec[i][r].masks)
					if err != nil {
						t.Fatal(err)
					}
					if q.NextStep() != (*p).NextStep() || q.Pos() != (*p).Pos() || !reflect.DeepEqual(q.kv, (*p).kv) {
						t.Fatalf("stage %d party %s resumed at step %d pos %d, the session's at %d/%d, caches equal %v", i, Role(r),
							q.NextStep(), q.Pos(), (*p).NextStep(), (*p).Pos(), reflect.DeepEqual(q.kv, (*p).kv))
					}
					*p = q
				}
			}
		}
		if len(got) < gen {
			h = sp.token(t, next)
			record()
		}
	}
	if !slicesEqual(got, want) {
		t.Fatalf("greedy with resumed parties differs from local:\n got %v\nwant %v", got, want)
	}
}

// TestResumeRefusesBadState: states out of order, of the other kind or
// role, of another stage, or malformed are refused with an error.
func TestResumeRefusesBadState(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	sp := newStagePipeline(t, path, [][2]int{{0, 5}}, 3)
	st := sp.stages[0]
	var op, ms [][]byte
	for _, id := range []int{1, 2, 3} {
		sp.token(t, id)
		o, _ := st.a.StepState(StateOpened)
		m, _ := st.a.StepState(StateMasks)
		op, ms = append(op, o), append(ms, m)
	}
	if _, err := ResumeStageParty(RoleA, st.ps, Options{}, op, ms); err != nil {
		t.Fatalf("good states: %v", err)
	}
	bm, _ := st.b.StepState(StateMasks)
	other := append([]byte(nil), op[1]...)
	other[5] ^= 1 // stage hash
	cases := map[string][2][][]byte{
		"order":       {{op[1], op[0]}, {ms[1], ms[0]}},
		"kind":        {{ms[0]}, {op[0]}},
		"role":        {op[2:], {bm}},
		"stage":       {{op[0], other}, ms[:2]},
		"count":       {op, ms[:2]},
		"truncated":   {{op[0][:len(op[0])-1]}, ms[:1]},
		"skipped one": {{op[0], op[2]}, {ms[0], ms[2]}},
	}
	for name, c := range cases {
		if _, err := ResumeStageParty(RoleA, st.ps, Options{}, c[0], c[1]); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ResumeStageParty(RoleA, st.ps, Options{MaxContext: 2}, op, ms); err == nil {
		t.Error("states beyond the context accepted")
	}
	if _, err := (&StageParty{}).StepState(StateOpened); !errors.Is(err, ErrMismatch) {
		t.Errorf("state before a step: %v", err)
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(EncodeState(&StepState{Kind: StateMasks, Role: RoleB, Step: 2, Pos: 7, Rows: 1, Layers: 2, KVDim: 1, Vals: []uint64{1, 2, 3, 4}}))
	f.Add(EncodeState(&StepState{Kind: StateOpened, Rows: 2, Layers: 1, KVDim: 2, Vals: make([]uint64, 8)}))
	f.Add([]byte{StageVersion, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeState(b)
		if err != nil {
			return
		}
		if len(s.Vals) != s.Layers*s.Rows*2*s.KVDim {
			t.Fatalf("%d values for %d x %d x 2 x %d", len(s.Vals), s.Layers, s.Rows, s.KVDim)
		}
		if !bytes.Equal(EncodeState(s), b) {
			t.Fatal("re-encoding differs")
		}
	})
}
