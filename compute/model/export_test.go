package model

import (
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/unfed/unfed/compute/llama2c"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/tensor"
)

func TestExportF32MatchesFile(t *testing.T) {
	bin := modeltest.Path(t, "stories260K.bin")
	ck, err := llama2c.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	raw := func(name string) []float32 {
		r, ok := ck.Tensor(name)
		if !ok {
			t.Fatalf("no %s", name)
		}
		return tensor.Float32View(r.Data)
	}
	lw, cfg, err := LoadLayerWeightsF32(bin, 2)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dim != 64 || cfg.NKVHeads != 4 {
		t.Fatalf("config %+v", cfg)
	}
	if !sameBits(lw.Wk, raw("blk.2.attn_k.weight")) || !sameBits(lw.WDown, raw("blk.2.ffn_down.weight")) ||
		!sameBits(lw.AttnNorm, raw("blk.2.attn_norm.weight")) || lw.Bq != nil {
		t.Fatal("exported layer 2 differs from the file")
	}
	emb, _, err := EmbeddingF32(bin)
	if err != nil || !sameBits(emb, raw("token_embd.weight")) {
		t.Fatalf("embedding differs: %v", err)
	}
	if _, _, err := LoadLayerWeightsF32(bin, 5); err == nil {
		t.Fatal("layer 5 of 5 exported")
	}
	// the Q8_0 synthetic model dequantises to what the engine multiplies by
	q := synthQwenTiny(t)
	lq, qc, err := LoadLayerWeightsF32(q, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(lq.Bq) != qc.QDim() || len(lq.Wk) != qc.KVDim()*qc.Dim || qc.RopeStyle != RopeNeox {
		t.Fatalf("qwen export shapes: bq %d, wk %d", len(lq.Bq), len(lq.Wk))
	}
}

// TestMidShardFromExportedBlock0: computing block 0 by hand from the exported
// weights and feeding a shard that starts at layer 1 gives the unsplit logits.
// This is the path the MPC pair + first compute relay take.
func TestMidShardFromExportedBlock0(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	whole, _ := Load(path, ShardOptions{})
	defer whole.Close()
	first, _ := Load(path, ShardOptions{First: 0, Last: 1})
	defer first.Close()
	rest, _ := Load(path, ShardOptions{First: 1})
	defer rest.Close()
	ids := []int{1, 403, 407, 261, 378}
	sw, _ := whole.NewSession(SessionOptions{})
	want, _ := sw.ForwardTokens(ids, 0)
	s1, _ := first.NewSession(SessionOptions{})
	x, err := s1.ForwardTokens(ids, 0)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := rest.NewSession(SessionOptions{})
	got, err := s2.ForwardActivations(x, len(ids), 0)
	if err != nil || !sameBits(got, want) {
		t.Fatalf("layer-1 shard from activations differs: %v", err)
	}
	// RopeRotate is the engine's rotation: position 0 is the identity
	cfg := whole.Config()
	v := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	RopeRotate(cfg, v, 0)
	if v[0] != 1 || v[7] != 8 {
		t.Fatalf("rope at position 0 changed the vector: %v", v)
	}
}

// TestQwen2Reference compares the engine's qwen2 path (NEOX RoPE, QKV
// biases, grouped-query attention, tied head) with an independent float64
// Python implementation of Hugging Face Qwen2 (spec/vectors/model).
func TestQwen2Reference(t *testing.T) {
	b, err := os.ReadFile("../../spec/vectors/model/qwen2-tiny-ref.txt")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	ref := map[int][]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "ids":
			for _, s := range f[1:] {
				n, _ := strconv.Atoi(s)
				ids = append(ids, n)
			}
		case "logits":
			p, _ := strconv.Atoi(f[1])
			for _, s := range f[2:] {
				v, err := strconv.ParseFloat(s, 64)
				if err != nil {
					t.Fatal(err)
				}
				ref[p] = append(ref[p], v)
			}
		}
	}
	sh, err := Load(synthQwenTiny(t), ShardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ss, _ := sh.NewSession(SessionOptions{AllLogits: true})
	got, err := ss.ForwardTokens(ids, 0)
	if err != nil {
		t.Fatal(err)
	}
	vocab := sh.Config().Vocab
	if len(ref) != 2 {
		t.Fatalf("vector has %d logit rows", len(ref))
	}
	for p, want := range ref {
		if len(want) != vocab {
			t.Fatalf("position %d: %d reference logits", p, len(want))
		}
		for i, w := range want {
			if d := math.Abs(float64(got[p*vocab+i]) - w); d > 1e-5 {
				t.Fatalf("position %d logit %d: engine %v, reference %v", p, i, got[p*vocab+i], w)
			}
		}
	}
}
