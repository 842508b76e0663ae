// Package llama2c reads Andrej Karpathy's llama2.c checkpoint format (the
// original "version 0" layout written by export.py --version 0) and exposes
// its weights under GGUF tensor names.
//
// Wire format (little-endian):
//
//	header  7 × int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//	        vocab_size (negative: a separate classifier follows), seq_len
//	float32 token_embedding_table [vocab][dim]
//	float32 rms_att_weight [layers][dim]
//	float32 wq [layers][dim][dim], wk [layers][kv_dim][dim], wv [layers][kv_dim][dim]
//	float32 wo [layers][dim][dim]
//	float32 rms_ffn_weight [layers][dim]
//	float32 w1 [layers][hidden][dim], w2 [layers][dim][hidden], w3 [layers][hidden][dim]
//	float32 rms_final_weight [dim]
//	float32 freq_cis_real [seq_len][head_size/2], freq_cis_imag (same; unused)
//	float32 wcls [vocab][dim] only when vocab_size < 0
//
// where kv_dim = dim*n_kv_heads/n_heads. Matrices are row-major with one
// row per output. The loader checks every size against the file length
// before slicing, so a truncated or hostile file is an error, never a panic.
package llama2c

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/unfed/unfed/compute/internal/mmap"
	"github.com/unfed/unfed/compute/tensor"
)

// Limits on header values; far above any llama2.c model.
const (
	MaxDim    = 1 << 16
	MaxLayers = 1024
	MaxVocab  = 1 << 22
	MaxSeqLen = 1 << 20
)

// HeaderSize is the size in bytes of the checkpoint header.
const HeaderSize = 7 * 4

// ErrFormat is wrapped by every error about a malformed checkpoint.
var ErrFormat = errors.New("llama2c: malformed checkpoint")

// Config is the checkpoint header.
type Config struct {
	Dim, HiddenDim, NLayers, NHeads, NKVHeads, VocabSize, SeqLen int
	// SharedClassifier is true when the output head is the token embedding.
	SharedClassifier bool
}

// Checkpoint is a parsed checkpoint. Tensors are views into the file's bytes
// and are named as in GGUF (token_embd.weight, blk.N.attn_q.weight, ...,
// output_norm.weight, output.weight when not shared).
type Checkpoint struct {
	Config  Config
	Tensors []tensor.Raw
	file    *mmap.File
}

// Open maps the checkpoint at path and parses it.
func Open(path string) (*Checkpoint, error) {
	f, err := mmap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("llama2c: %w", err)
	}
	c, err := Parse(f.Data)
	if err != nil {
		f.Close()
		return nil, err
	}
	c.file = f
	return c, nil
}

// Close releases the mapping; tensor data must not be used afterwards.
func (c *Checkpoint) Close() error {
	if c.file == nil {
		return nil
	}
	return c.file.Close()
}

// Tensor returns the tensor called name.
func (c *Checkpoint) Tensor(name string) (tensor.Raw, bool) {
	for _, t := range c.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return tensor.Raw{}, false
}

// ParseHeader decodes and validates the 28-byte header.
func ParseHeader(b []byte) (Config, error) {
	if len(b) < HeaderSize {
		return Config{}, fmt.Errorf("%w: %d bytes is shorter than the header", ErrFormat, len(b))
	}
	var h [7]int32
	for i := range h {
		h[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	c := Config{Dim: int(h[0]), HiddenDim: int(h[1]), NLayers: int(h[2]), NHeads: int(h[3]),
		NKVHeads: int(h[4]), VocabSize: int(h[5]), SeqLen: int(h[6])}
	c.SharedClassifier = c.VocabSize > 0
	if c.VocabSize < 0 {
		c.VocabSize = -c.VocabSize
	}
	switch {
	case c.Dim <= 0 || c.Dim > MaxDim, c.HiddenDim <= 0 || c.HiddenDim > 4*MaxDim:
		return c, fmt.Errorf("%w: dim %d, hidden_dim %d", ErrFormat, c.Dim, c.HiddenDim)
	case c.NLayers <= 0 || c.NLayers > MaxLayers:
		return c, fmt.Errorf("%w: n_layers %d", ErrFormat, c.NLayers)
	case c.NHeads <= 0 || c.Dim%c.NHeads != 0 || (c.Dim/c.NHeads)%2 != 0:
		return c, fmt.Errorf("%w: n_heads %d does not split dim %d into even heads", ErrFormat, c.NHeads, c.Dim)
	case c.NKVHeads <= 0 || c.NKVHeads > c.NHeads || c.NHeads%c.NKVHeads != 0:
		return c, fmt.Errorf("%w: n_kv_heads %d with n_heads %d", ErrFormat, c.NKVHeads, c.NHeads)
	case c.VocabSize <= 0 || c.VocabSize > MaxVocab:
		return c, fmt.Errorf("%w: vocab_size %d", ErrFormat, c.VocabSize)
	case c.SeqLen <= 0 || c.SeqLen > MaxSeqLen:
		return c, fmt.Errorf("%w: seq_len %d", ErrFormat, c.SeqLen)
	}
	return c, nil
}

// Parse parses a checkpoint held in memory; tensors are views into data.
func Parse(data []byte) (*Checkpoint, error) {
	cfg, err := ParseHeader(data)
	if err != nil {
		return nil, err
	}
	dim, hid, L := uint64(cfg.Dim), uint64(cfg.HiddenDim), cfg.NLayers
	kvDim := dim * uint64(cfg.NKVHeads) / uint64(cfg.NHeads)
	headSize := dim / uint64(cfg.NHeads)
	vocab := uint64(cfg.VocabSize)

	c := &Checkpoint{Config: cfg}
	off := uint64(HeaderSize)
	size := uint64(len(data))
	// take slices a run of count tensors of shape dims (fastest first).
	take := func(names func(i int) string, count int, dims ...uint64) error {
		n := uint64(1)
		for _, d := range dims {
			n *= d // each d <= 2**18 and at most 2 dims: no overflow
		}
		for i := 0; i < count; i++ {
			end := off + 4*n
			if end > size {
				what := "the rope tables"
				if names != nil {
					what = names(i)
				}
				return fmt.Errorf("%w: file ends at %d bytes, %s needs %d", ErrFormat, size, what, end)
			}
			if names != nil {
				c.Tensors = append(c.Tensors, tensor.Raw{Name: names(i), Type: tensor.F32,
					Dims: append([]uint64(nil), dims...), Data: data[off:end:end]})
			}
			off = end
		}
		return nil
	}
	blk := func(suffix string) func(int) string {
		return func(i int) string { return fmt.Sprintf("blk.%d.%s", i, suffix) }
	}
	fixed := func(name string) func(int) string { return func(int) string { return name } }
	steps := []struct {
		names func(int) string
		count int
		dims  []uint64
	}{
		{fixed("token_embd.weight"), 1, []uint64{dim, vocab}},
		{blk("attn_norm.weight"), L, []uint64{dim}},
		{blk("attn_q.weight"), L, []uint64{dim, dim}},
		{blk("attn_k.weight"), L, []uint64{dim, kvDim}},
		{blk("attn_v.weight"), L, []uint64{dim, kvDim}},
		{blk("attn_output.weight"), L, []uint64{dim, dim}},
		{blk("ffn_norm.weight"), L, []uint64{dim}},
		{blk("ffn_gate.weight"), L, []uint64{dim, hid}},
		{blk("ffn_down.weight"), L, []uint64{hid, dim}},
		{blk("ffn_up.weight"), L, []uint64{dim, hid}},
		{fixed("output_norm.weight"), 1, []uint64{dim}},
		{nil, 2, []uint64{headSize / 2, uint64(cfg.SeqLen)}}, // freq_cis_real, freq_cis_imag
	}
	if !cfg.SharedClassifier {
		steps = append(steps, struct {
			names func(int) string
			count int
			dims  []uint64
		}{fixed("output.weight"), 1, []uint64{dim, vocab}})
	}
	for _, s := range steps {
		if err := take(s.names, s.count, s.dims...); err != nil {
			return nil, err
		}
	}
	return c, nil
}
