package mpc

import (
	"math"
	"os"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"

	"github.com/unfed/unfed/compute/llama2c"
	"github.com/unfed/unfed/compute/tensor"
	"github.com/unfed/unfed/compute/tokenizer"
)

// storiesWeights reads the embedding and block 0 of stories260K.bin.
func storiesWeights(t testing.TB) *Weights {
	ck, err := llama2c.Open(modeltest.Path(t, "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	get := func(name string) []float32 {
		r, ok := ck.Tensor(name)
		if !ok || r.Type != tensor.F32 {
			t.Fatalf("tensor %s missing or not F32", name)
		}
		return append([]float32(nil), tensor.Float32View(r.Data)...)
	}
	c := ck.Config
	return &Weights{
		Config: Config{Dim: c.Dim, NHeads: c.NHeads, NKVHeads: c.NKVHeads, HeadDim: c.Dim / c.NHeads, FFN: c.HiddenDim,
			Vocab: c.VocabSize, NormEps: 1e-5, RopeTheta: 10000, RopeAdjacentPairs: true},
		Embedding: get("token_embd.weight"),
		AttnNorm:  get("blk.0.attn_norm.weight"),
		Wq:        get("blk.0.attn_q.weight"),
		Wk:        get("blk.0.attn_k.weight"),
		Wv:        get("blk.0.attn_v.weight"),
		Wo:        get("blk.0.attn_output.weight"),
		FFNNorm:   get("blk.0.ffn_norm.weight"),
		W1:        get("blk.0.ffn_gate.weight"),
		W2:        get("blk.0.ffn_down.weight"),
		W3:        get("blk.0.ffn_up.weight"),
	}
}

// TestMPCStories260K runs BOS + "Once upon a time" + the model's known
// greedy continuation (48+ tokens, /work/shared/models/README.md) through the
// MPC block 0 on the real stories260K weights and bounds the error against
// the plaintext block 0.
func TestMPCStories260K(t *testing.T) {
	f, err := os.Open(modeltest.Path(t, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromLlama2C(f, 512)
	if err != nil {
		t.Fatal(err)
	}
	tokens := tok.Encode("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.", true)
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
