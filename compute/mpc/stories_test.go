package mpc

import (
	"math"
	"os"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"

	"github.com/unfed/unfed/compute/tokenizer"
)

// storiesWeights reads stories260K's embedding and block 0 with LoadWeights.
func storiesWeights(t testing.TB) *Weights {
	t.Helper()
	w, err := LoadWeights(modeltest.Path(t, "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// storiesTokens encodes text with stories260K's llama2.c tokenizer, BOS first.
func storiesTokens(t *testing.T, text string) []int {
	t.Helper()
	f, err := os.Open(modeltest.Path(t, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromLlama2C(f, 512)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Encode(text, true)
}

// TestMPCStories260K runs BOS + "Once upon a time" + the model's known
// greedy continuation (48+ tokens, /work/shared/models/README.md) through the
// MPC block 0 on the real stories260K weights and bounds the error against
// the plaintext block 0.
func TestMPCStories260K(t *testing.T) {
	tokens := storiesTokens(t, "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.")
	if len(tokens) < 5+20 || tokens[1] != 403 {
		t.Fatalf("unexpected tokenization %v", tokens)
	}
	w := storiesWeights(t)
	ref, err := ReferenceBlock0(w, tokens)
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(t, w, 77, Options{})
	var worst float64
	for pos, tk := range tokens {
		got := s.step(t, tk)
		worst = math.Max(worst, maxAbsDiff(got, ref[pos*w.Config.Dim:(pos+1)*w.Config.Dim]))
	}
	t.Logf("stories260K: %d positions, max abs error of the MPC block-0 output vs plaintext: %.4g", len(tokens), worst)
	if worst > 0.05 {
		t.Errorf("max abs error %g above 0.05", worst)
	}
}

// TestMPCStoriesLargeSoftmaxSum runs a sequence whose softmax denominator at
// position 10, head 0, is about 28,900: above the windows of the lower
// levels of the reciprocal lookup, whose indicators then wrap. Before the
// level indicators were made monotone (spec §6.7) this gave errors of 10 and
// more at that position for most dealer seeds; every seed here must stay
// within the usual bound.
func TestMPCStoriesLargeSoftmaxSum(t *testing.T) {
	tokens := storiesTokens(t, "The little dog was a little girl named Lily. She loved")
	w := storiesWeights(t)
	ref, err := ReferenceBlock0(w, tokens)
	if err != nil {
		t.Fatal(err)
	}
	D := w.Config.Dim
	for seed := uint64(1); seed <= 3; seed++ {
		s := newSession(t, w, seed, Options{})
		var worst float64
		for pos, tk := range tokens {
			got := s.step(t, tk)
			worst = math.Max(worst, maxAbsDiff(got, ref[pos*D:(pos+1)*D]))
		}
		if worst > 0.05 {
			t.Errorf("seed %d: max abs error %g above 0.05", seed, worst)
		}
	}
}
