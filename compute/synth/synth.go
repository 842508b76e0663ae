// Package synth writes synthetic models: deterministic pseudo-random weights
// in the tensor shapes of real models, as GGUF files with a working
// tokenizer, for speed and memory measurements and for tests of code paths
// (qwen2, quantised types) no small trained model covers.
//
// Weights come from a xorshift64* stream seeded per tensor by
// SHA-256(seed || tensor name), so any tensor can be regenerated alone and
// the file is byte-identical for a given shape, type and seed.
package synth

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/tensor"
	"github.com/unfed/unfed/compute/tokenizer"
)

// Shape is the architecture of a synthetic model.
type Shape struct {
	Name      string
	Arch      string // "llama" or "qwen2"
	Dim       int
	Layers    int
	Heads     int
	KVHeads   int
	FFN       int
	Vocab     int // for llama with a tokenizer copied from a file, the file's vocabulary wins
	Context   int
	RopeTheta float32
	NormEps   float32
	QKVBias   bool
	Tied      bool // no output.weight: the head is the embedding
}

// Shapes are the shapes the tool knows by name.
var Shapes = map[string]Shape{
	// TinyStories-110M (llama2.c's stories110M).
	"llama-110m": {Name: "llama-110m", Arch: "llama", Dim: 768, Layers: 12, Heads: 12, KVHeads: 12, FFN: 2048,
		Vocab: 32000, Context: 1024, RopeTheta: 10000, NormEps: 1e-5},
	// Qwen2.5-0.5B.
	"qwen2.5-0.5b": {Name: "qwen2.5-0.5b", Arch: "qwen2", Dim: 896, Layers: 24, Heads: 14, KVHeads: 2, FFN: 4864,
		Vocab: 151936, Context: 32768, RopeTheta: 1e6, NormEps: 1e-6, QKVBias: true, Tied: true},
	// Small shapes for tests.
	"llama-tiny": {Name: "llama-tiny", Arch: "llama", Dim: 64, Layers: 4, Heads: 4, KVHeads: 2, FFN: 96,
		Vocab: 320, Context: 256, RopeTheta: 10000, NormEps: 1e-5},
	"qwen2-tiny": {Name: "qwen2-tiny", Arch: "qwen2", Dim: 64, Layers: 6, Heads: 4, KVHeads: 2, FFN: 128,
		Vocab: 512, Context: 512, RopeTheta: 1e6, NormEps: 1e-6, QKVBias: true, Tied: true},
}

// ShapeNames returns the known shape names, sorted.
func ShapeNames() []string {
	var n []string
	for k := range Shapes {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Options select what to write.
type Options struct {
	Shape Shape
	DType tensor.DType // type of the 2-D weight matrices; norms and biases stay F32
	Seed  uint64
	// TokenizerFrom names a GGUF file whose llama (SentencePiece) tokenizer is
	// copied, e.g. llama-2-tiny-random.gguf for the 32000-token Llama 2
	// vocabulary. Empty: a synthetic byte-level (GPT-2 style) vocabulary.
	TokenizerFrom string
}

// WriteFile writes the synthetic model to path (replacing it).
func WriteFile(path string, opts Options) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := Write(bw, opts); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("synth: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// Write writes the synthetic model as GGUF to out.
func Write(out io.Writer, opts Options) error {
	s := opts.Shape
	if s.Arch != "llama" && s.Arch != "qwen2" {
		return fmt.Errorf("synth: architecture %q", s.Arch)
	}
	if s.Dim <= 0 || s.Heads <= 0 || s.KVHeads <= 0 || s.Dim%s.Heads != 0 || s.Heads%s.KVHeads != 0 || s.Layers <= 0 || s.FFN <= 0 {
		return fmt.Errorf("synth: inconsistent shape %+v", s)
	}
	if !opts.DType.Supported() {
		return fmt.Errorf("synth: %w: %v", tensor.ErrUnsupportedType, opts.DType)
	}
	w := gguf.NewWriter()
	p := s.Arch + "."
	w.AddString("general.architecture", s.Arch)
	w.AddString("general.name", "unfed-synth-"+s.Name)
	w.AddUint32(p+"context_length", uint32(s.Context))
	w.AddUint32(p+"embedding_length", uint32(s.Dim))
	w.AddUint32(p+"block_count", uint32(s.Layers))
	w.AddUint32(p+"feed_forward_length", uint32(s.FFN))
	w.AddUint32(p+"attention.head_count", uint32(s.Heads))
	w.AddUint32(p+"attention.head_count_kv", uint32(s.KVHeads))
	w.AddUint32(p+"rope.dimension_count", uint32(s.Dim/s.Heads))
	w.AddFloat32(p+"rope.freq_base", s.RopeTheta)
	w.AddFloat32(p+"attention.layer_norm_rms_epsilon", s.NormEps)
	w.AddUint32("general.file_type", fileType(opts.DType))
	vocab := s.Vocab
	if opts.TokenizerFrom != "" {
		if s.Arch != "llama" {
			return fmt.Errorf("synth: --tokenizer-from is for llama shapes")
		}
		n, err := copyTokenizer(w, opts.TokenizerFrom)
		if err != nil {
			return err
		}
		vocab = n
	} else {
		toks, _, _ := tokenizer.SyntheticGPT2Vocab(vocab)
		vocab = len(toks)
		tokenizer.AddSyntheticGPT2(w, vocab)
	}

	dim, hd := s.Dim, s.Dim/s.Heads
	kvd := s.KVHeads * hd
	type tdesc struct {
		name       string
		rows, cols int // cols is the row length; rows 0 for vectors
		kind       int // 0 matrix, 1 norm, 2 bias
	}
	var ts []tdesc
	ts = append(ts, tdesc{"token_embd.weight", vocab, dim, 0})
	for l := 0; l < s.Layers; l++ {
		b := fmt.Sprintf("blk.%d.", l)
		ts = append(ts,
			tdesc{b + "attn_norm.weight", 0, dim, 1},
			tdesc{b + "attn_q.weight", dim, dim, 0},
			tdesc{b + "attn_k.weight", kvd, dim, 0},
			tdesc{b + "attn_v.weight", kvd, dim, 0},
			tdesc{b + "attn_output.weight", dim, dim, 0})
		if s.QKVBias {
			ts = append(ts, tdesc{b + "attn_q.bias", 0, dim, 2}, tdesc{b + "attn_k.bias", 0, kvd, 2},
				tdesc{b + "attn_v.bias", 0, kvd, 2})
		}
		ts = append(ts,
			tdesc{b + "ffn_norm.weight", 0, dim, 1},
			tdesc{b + "ffn_gate.weight", s.FFN, dim, 0},
			tdesc{b + "ffn_up.weight", s.FFN, dim, 0},
			tdesc{b + "ffn_down.weight", dim, s.FFN, 0})
	}
	ts = append(ts, tdesc{"output_norm.weight", 0, dim, 1})
	if !s.Tied {
		ts = append(ts, tdesc{"output.weight", vocab, dim, 0})
	}
	for _, t := range ts {
		var data []byte
		var err error
		switch t.kind {
		case 0:
			data, err = matrix(opts.Seed, t.name, t.rows, t.cols, opts.DType)
			if err == nil {
				err = w.AddTensor(t.name, gguf.Type(opts.DType), []uint64{uint64(t.cols), uint64(t.rows)}, data)
			}
		default:
			v := vector(opts.Seed, t.name, t.cols, t.kind == 1)
			data, _ = tensor.QuantizeRow(nil, tensor.F32, v)
			err = w.AddTensor(t.name, gguf.TypeF32, []uint64{uint64(t.cols)}, data)
		}
		if err != nil {
			return fmt.Errorf("synth: %s: %w", t.name, err)
		}
	}
	if _, err := w.WriteTo(out); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

func fileType(t tensor.DType) uint32 {
	switch t {
	case tensor.F16:
		return 1
	case tensor.Q8_0:
		return 7
	case tensor.BF16:
		return 32
	}
	return 0
}

// rng is xorshift64* seeded from SHA-256(seed || name).
type rng uint64

func newRNG(seed uint64, name string) rng {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	h.Write([]byte(name))
	s := binary.BigEndian.Uint64(h.Sum(nil))
	if s == 0 {
		s = 1
	}
	return rng(s)
}

// uniform returns a float32 uniform in [-1, 1).
func (r *rng) uniform() float32 {
	x := uint64(*r)
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*r = rng(x)
	return float32((x*2685821657736338717)>>40)/(1<<23) - 1
}

// matrix returns rows×cols weights uniform in ±1/sqrt(cols), encoded as t.
func matrix(seed uint64, name string, rows, cols int, t tensor.DType) ([]byte, error) {
	r := newRNG(seed, name)
	scale := float32(1 / math.Sqrt(float64(cols)))
	rb, err := t.RowBytes(cols)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, rb*rows)
	row := make([]float32, cols)
	for i := 0; i < rows; i++ {
		for j := range row {
			row[j] = r.uniform() * scale
		}
		if out, err = tensor.QuantizeRow(out, t, row); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// vector returns a norm weight (around 1) or a bias (small).
func vector(seed uint64, name string, n int, norm bool) []float32 {
	r := newRNG(seed, name)
	v := make([]float32, n)
	for i := range v {
		if norm {
			v[i] = 1 + 0.1*r.uniform()
		} else {
			v[i] = 0.05 * r.uniform()
		}
	}
	return v
}

// copyTokenizer copies the tokenizer.* metadata of a GGUF file with a llama
// vocabulary and returns the vocabulary size.
func copyTokenizer(w *gguf.Writer, path string) (int, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return 0, fmt.Errorf("synth: tokenizer source: %w", err)
	}
	defer f.Close()
	if m, _ := f.String(tokenizer.KeyModel); m != "llama" {
		return 0, fmt.Errorf("synth: %s has tokenizer model %q, want llama", path, m)
	}
	toks, err := f.StringArray(tokenizer.KeyTokens)
	if err != nil {
		return 0, fmt.Errorf("synth: tokenizer source: %w", err)
	}
	for _, kv := range f.KV {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			w.Add(kv.Key, kv.Value)
		}
	}
	return len(toks), nil
}
