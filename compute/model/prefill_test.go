package model

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/synth"
	"github.com/unfed/unfed/compute/tensor"
)

// qwenGQAShape is a small model with qwen2.5-0.5B's attention layout (head
// dim 64, seven query heads per key/value head, q/k/v biases, NEOX RoPE,
// tied head) and FFN width ratio, wide enough that products split across
// threads and prefill uses the batched kernels.
var qwenGQAShape = synth.Shape{Name: "qwen2-gqa", Arch: "qwen2", Dim: 448, Layers: 2, Heads: 7, KVHeads: 1, FFN: 2432,
	Vocab: 1024, Context: 256, RopeTheta: 1e6, NormEps: 1e-6, QKVBias: true, Tied: true}

// TestPrefillEqualsStepwise: a prompt processed in batches (prefill, more
// than maxBatch positions, so it spans batches and attention blocks) gives
// the bits of the same tokens fed one at a time, for the logits of every
// position and for the whole KV cache, on 1, 2 and 3 threads; so does a
// prefill that continues a session from a position that is not a multiple
// of anything.
func TestPrefillEqualsStepwise(t *testing.T) {
	qwenPath := func(dt tensor.DType) string {
		p := filepath.Join(t.TempDir(), "qwen2-gqa-"+dt.String()+".gguf")
		if err := synth.WriteFile(p, synth.Options{Shape: qwenGQAShape, DType: dt, Seed: 9}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		path string
		n    int
	}{
		{"stories260K", modeltest.Path(t, "stories260K.gguf"), 150},
		{"qwen2-gqa-q8_0", qwenPath(tensor.Q8_0), 150},
		{"qwen2-gqa-f32", qwenPath(tensor.F32), 90},
		{"qwen2-gqa-f16", qwenPath(tensor.F16), 70},
		{"qwen2-gqa-bf16", qwenPath(tensor.BF16), 70},
		{"llama-tiny-f32", synthModel(t, "llama-tiny", tensor.F32), 100},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ref *prefillRun
			for _, threads := range []int{1, 2, 3} {
				sh, err := Load(c.path, ShardOptions{Threads: threads})
				if err != nil {
					t.Fatal(err)
				}
				vocab := sh.Config().Vocab
				ids := make([]int, c.n)
				for i := range ids {
					ids[i] = (i*37 + 1) % vocab
				}
				// token by token
				step := runPrefill(t, sh, ids, 1)
				// one call: batches of maxBatch
				batch := runPrefill(t, sh, ids, len(ids))
				// a first call of 37 positions, then the rest in one
				mixed := runPrefill(t, sh, ids, 37)
				for _, r := range []struct {
					what string
					run  *prefillRun
				}{{"batched", batch}, {"continued", mixed}} {
					if err := r.run.same(step); err != nil {
						t.Fatalf("threads %d: %s prefill differs from stepwise: %v", threads, r.what, err)
					}
				}
				if ref == nil {
					ref = step
				} else if err := step.same(ref); err != nil {
					t.Fatalf("threads %d differs from threads 1: %v", threads, err)
				}
				sh.Close()
			}
		})
	}
}

// prefillRun is what a prefill leaves: every position's logits and the KV
// cache of every layer.
type prefillRun struct {
	logits []float32
	k, v   [][]float32
}

// runPrefill feeds ids from position 0 in calls of chunk positions (the
// last may be shorter) and returns the logits and the cache.
func runPrefill(t *testing.T, sh *Shard, ids []int, chunk int) *prefillRun {
	t.Helper()
	ss, err := sh.NewSession(SessionOptions{AllLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	r := &prefillRun{}
	for p := 0; p < len(ids); p += chunk {
		l, err := ss.ForwardTokens(ids[p:min(p+chunk, len(ids))], p)
		if err != nil {
			t.Fatal(err)
		}
		r.logits = append(r.logits, l...)
	}
	kvd := sh.Config().KVDim()
	for li := range ss.k {
		r.k = append(r.k, append([]float32(nil), ss.k[li][:len(ids)*kvd]...))
		r.v = append(r.v, append([]float32(nil), ss.v[li][:len(ids)*kvd]...))
	}
	return r
}

func (r *prefillRun) same(o *prefillRun) error {
	if !sameBits(r.logits, o.logits) {
		return fmt.Errorf("logits")
	}
	for li := range r.k {
		if !sameBits(r.k[li], o.k[li]) || !sameBits(r.v[li], o.v[li]) {
			return fmt.Errorf("KV cache of layer %d", li)
		}
	}
	return nil
}
