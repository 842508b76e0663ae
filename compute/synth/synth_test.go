package synth

import (
	"bytes"
	"testing"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/modeltest"
	"github.com/unfed/unfed/compute/tensor"
	"github.com/unfed/unfed/compute/tokenizer"
)

func write(t *testing.T, o Options) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, o); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDeterministicAndSeeded(t *testing.T) {
	o := Options{Shape: Shapes["qwen2-tiny"], DType: tensor.Q8_0, Seed: 5}
	a, b := write(t, o), write(t, o)
	o.Seed = 6
	c := write(t, o)
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatal("output is not a function of the seed")
	}
	f, err := gguf.Parse(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Tensor("output.weight"); ok {
		t.Fatal("tied qwen2 shape has output.weight")
	}
	if bq, ok := f.Tensor("blk.5.attn_q.bias"); !ok || bq.Type != gguf.TypeF32 {
		t.Fatal("qwen2 shape lacks f32 q bias")
	}
	if q, _ := f.Tensor("blk.0.ffn_down.weight"); q.Type != gguf.TypeQ8_0 || q.Dims[0] != 128 || q.Dims[1] != 64 {
		t.Fatalf("ffn_down %+v", q)
	}
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Decode(tok.Encode("hello, world", false)); got != "hello, world" {
		t.Fatalf("round trip %q", got)
	}
}

func TestTokenizerFrom(t *testing.T) {
	src := modeltest.Path(t, "llama-2-tiny-random.gguf")
	b := write(t, Options{Shape: Shapes["llama-tiny"], DType: tensor.F16, Seed: 1, TokenizerFrom: src})
	f, err := gguf.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	emb, _ := f.Tensor("token_embd.weight")
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	if emb.Dims[1] != 32000 || tok.VocabSize() != 32000 || tok.Kind() != "llama" {
		t.Fatalf("vocab %d / %d kind %s", emb.Dims[1], tok.VocabSize(), tok.Kind())
	}
	if err := Write(&bytes.Buffer{}, Options{Shape: Shapes["qwen2-tiny"], DType: tensor.F32, TokenizerFrom: src}); err == nil {
		t.Fatal("llama tokenizer accepted for a qwen2 shape")
	}
	if err := Write(&bytes.Buffer{}, Options{Shape: Shapes["llama-tiny"], DType: 99}); err == nil {
		t.Fatal("unsupported dtype accepted")
	}
}
