package model

import (
	"math"
	"slices"
	"testing"

	"github.com/unfed/unfed/compute/tensor"
)

// TestEndsPackedHead: the client's ends hold a Q8_0 output head in the
// kernels' packed layout, as a last shard does (issue 16: unpacked, the
// head of the qwen2.5-0.5B shape cost the client 11× more per token), and
// their embedding rows and logits are bit for bit a whole model's: the
// rows a first shard embeds, the logits of the final hidden state a last
// shard returns.
func TestEndsPackedHead(t *testing.T) {
	for _, shape := range []string{"qwen2-tiny", "llama-tiny"} {
		path := synthModel(t, shape, tensor.Q8_0)
		e, err := LoadEnds(path)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if !e.output.Packed() {
			t.Fatalf("%s: the ends' Q8_0 head is not packed", shape)
		}
		sh, err := Load(path, ShardOptions{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer sh.Close()
		ids := []int{1, 7, 42, 3}
		whole, err := sh.NewSession(SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want, err := whole.ForwardTokens(ids, 0)
		whole.Close()
		if err != nil {
			t.Fatal(err)
		}
		hs, err := sh.NewSession(SessionOptions{FinalHidden: true})
		if err != nil {
			t.Fatal(err)
		}
		defer hs.Close()
		x := make([]float32, 0, len(ids)*e.Config().Dim)
		var y []float32 // the same rows by AppendEmbed
		for _, id := range ids {
			row, err := e.Embed(id)
			if err != nil {
				t.Fatal(err)
			}
			x = append(x, row...)
			if y, err = e.AppendEmbed(y, id); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(x, y) {
			t.Fatalf("%s: AppendEmbed differs from Embed", shape)
		}
		if _, err := e.AppendEmbed(y, e.Config().Vocab); err == nil {
			t.Fatalf("%s: AppendEmbed took a token outside the vocabulary", shape)
		}
		hidden, err := hs.ForwardActivations(x, len(ids), 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Logits(hidden)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d logits, want %d", shape, len(got), len(want))
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: logit %d: ends %v, whole model %v", shape, i, got[i], want[i])
			}
		}
	}
}
