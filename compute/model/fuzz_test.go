package model

import (
	"bytes"
	"testing"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/synth"
	"github.com/unfed/unfed/compute/tensor"
)

// FuzzLoadGGUF: whatever the metadata and tensor table of a GGUF file say,
// loading a model from it and running one position either fails cleanly or
// produces vocab logits; it never panics or allocates beyond the limits.
func FuzzLoadGGUF(f *testing.F) {
	small := synth.Shapes["llama-tiny"]
	small.Layers, small.Dim, small.Heads, small.KVHeads, small.FFN = 1, 32, 2, 1, 32
	for _, c := range []struct {
		shape synth.Shape
		dt    tensor.DType
	}{{small, tensor.Q8_0}, {small, tensor.F16}} {
		var b bytes.Buffer
		if err := synth.Write(&b, synth.Options{Shape: c.shape, DType: c.dt, Seed: 1}); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := gguf.Parse(data)
		if err != nil {
			return
		}
		src, err := ggufSource(g)
		if err != nil {
			return
		}
		sh, err := newShard(src, ShardOptions{Threads: 1, Limits: Limits{MaxContext: 4, MemoryBudget: 1 << 24}})
		if err != nil {
			return
		}
		ss, err := sh.NewSession(SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out, err := ss.ForwardTokens([]int{0}, 0)
		if err == nil && len(out) != sh.Config().Vocab {
			t.Fatalf("%d logits for vocab %d", len(out), sh.Config().Vocab)
		}
	})
}
