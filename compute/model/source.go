package model

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/unfed/unfed/compute/gguf"
	"github.com/unfed/unfed/compute/llama2c"
	"github.com/unfed/unfed/compute/tensor"
)

// Format names a model file format.
type Format string

// Model file formats.
const (
	FormatGGUF    Format = "gguf"
	FormatLlama2C Format = "llama2c"
)

// source is an opened model file: its configuration and its tensors under
// GGUF names, as views into a memory mapping.
type source struct {
	format Format
	cfg    Config
	names  []string // every tensor, file order
	get    func(name string) (tensor.Raw, bool)
	gguf   *gguf.File // nil for llama2.c
	close  func() error
	// mapped: tensor bytes are views of a read-only file mapping, whose
	// pages may be dropped once a matrix has been packed (dropPages).
	mapped bool
}

// DetectFormat reports the format of the model file at path from its magic.
func DetectFormat(path string) (Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return "", fmt.Errorf("model: %s: %w", path, err)
	}
	if bytes.Equal(magic[:], []byte("GGUF")) {
		return FormatGGUF, nil
	}
	return FormatLlama2C, nil
}

func openSource(path string) (*source, error) {
	format, err := DetectFormat(path)
	if err != nil {
		return nil, err
	}
	if format == FormatGGUF {
		f, err := gguf.Open(path)
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		s, err := ggufSource(f)
		if err != nil {
			f.Close()
			return nil, err
		}
		s.mapped = fileMapped
		return s, nil
	}
	c, err := llama2c.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	s := llama2cSource(c)
	s.mapped = fileMapped
	return s, nil
}

func llama2cSource(c *llama2c.Checkpoint) *source {
	h := c.Config
	cfg := Config{
		Arch: ArchLlama, Dim: h.Dim, NLayers: h.NLayers, NHeads: h.NHeads, NKVHeads: h.NKVHeads,
		HeadDim: h.Dim / h.NHeads, FFNDim: h.HiddenDim, Vocab: h.VocabSize, ContextLength: h.SeqLen,
		NormEps: 1e-5, RopeTheta: 10000, RopeStyle: RopeAdjacent, TiedOutput: h.SharedClassifier,
	}
	names := make([]string, len(c.Tensors))
	for i, t := range c.Tensors {
		names[i] = t.Name
	}
	return &source{format: FormatLlama2C, cfg: cfg, names: names, get: c.Tensor, close: c.Close}
}

func ggufSource(f *gguf.File) (*source, error) {
	cfg, err := ConfigFromGGUF(f)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(f.Tensors))
	for i, t := range f.Tensors {
		names[i] = t.Name
	}
	get := func(name string) (tensor.Raw, bool) {
		ti, ok := f.Tensor(name)
		if !ok {
			return tensor.Raw{}, false
		}
		data := f.TensorData(ti)
		if data == nil && ti.Size > 0 {
			return tensor.Raw{}, false
		}
		return tensor.Raw{Name: ti.Name, Type: tensor.DType(ti.Type), Dims: ti.Dims, Data: data}, true
	}
	return &source{format: FormatGGUF, cfg: cfg, names: names, get: get, gguf: f, close: f.Close}, nil
}

// ConfigFromGGUF reads the hyperparameters from GGUF metadata, following the
// conventions of llama.cpp ("<arch>.embedding_length" and so on).
func ConfigFromGGUF(f *gguf.File) (Config, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return Config{}, fmt.Errorf("model: %w", err)
	}
	cfg := Config{Arch: arch}
	if arch != ArchLlama && arch != ArchQwen2 {
		return cfg, fmt.Errorf("%w: architecture %q (want llama or qwen2)", ErrConfig, arch)
	}
	p := arch + "."
	uintKey := func(key string, dst *int, def int) error {
		v, err := f.Uint(p + key)
		if errors.Is(err, gguf.ErrMissing) && def > 0 {
			*dst = def
			return nil
		}
		if err != nil {
			return fmt.Errorf("model: %w", err)
		}
		if v > 1<<31 {
			return fmt.Errorf("%w: %s%s = %d", ErrConfig, p, key, v)
		}
		*dst = int(v)
		return nil
	}
	for _, k := range []struct {
		key string
		dst *int
	}{{"embedding_length", &cfg.Dim}, {"block_count", &cfg.NLayers}, {"attention.head_count", &cfg.NHeads},
		{"feed_forward_length", &cfg.FFNDim}} {
		if err := uintKey(k.key, k.dst, 0); err != nil {
			return cfg, err
		}
	}
	if cfg.NHeads <= 0 || cfg.Dim%cfg.NHeads != 0 {
		return cfg, fmt.Errorf("%w: %d heads for dim %d", ErrConfig, cfg.NHeads, cfg.Dim)
	}
	if err := uintKey("attention.head_count_kv", &cfg.NKVHeads, cfg.NHeads); err != nil {
		return cfg, err
	}
	if err := uintKey("attention.key_length", &cfg.HeadDim, cfg.Dim/cfg.NHeads); err != nil {
		return cfg, err
	}
	if err := uintKey("context_length", &cfg.ContextLength, 2048); err != nil {
		return cfg, err
	}
	var ropeDim int
	if err := uintKey("rope.dimension_count", &ropeDim, cfg.HeadDim); err != nil {
		return cfg, err
	}
	if ropeDim != cfg.HeadDim {
		return cfg, fmt.Errorf("%w: partial rotary embedding (%d of %d) is not supported", ErrConfig, ropeDim, cfg.HeadDim)
	}
	eps, err := f.Float(p + "attention.layer_norm_rms_epsilon")
	if errors.Is(err, gguf.ErrMissing) {
		eps = 1e-5
	} else if err != nil {
		return cfg, fmt.Errorf("model: %w", err)
	}
	cfg.NormEps = float32(eps)
	cfg.RopeTheta, err = f.Float(p + "rope.freq_base")
	if errors.Is(err, gguf.ErrMissing) {
		cfg.RopeTheta = 10000
		if arch == ArchQwen2 {
			cfg.RopeTheta = 1e6
		}
	} else if err != nil {
		return cfg, fmt.Errorf("model: %w", err)
	}
	cfg.RopeStyle = RopeAdjacent
	if arch == ArchQwen2 {
		cfg.RopeStyle = RopeNeox
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || len(emb.Dims) != 2 {
		return cfg, fmt.Errorf("%w: no 2-D token_embd.weight", ErrConfig)
	}
	if emb.Dims[1] > MaxVocab {
		return cfg, fmt.Errorf("%w: vocabulary %d", ErrConfig, emb.Dims[1])
	}
	cfg.Vocab = int(emb.Dims[1])
	_, hasOut := f.Tensor("output.weight")
	cfg.TiedOutput = !hasOut
	_, cfg.QKVBias = f.Tensor("blk.0.attn_q.bias")
	return cfg, cfg.Validate()
}

// ReadConfig returns the hyperparameters of the model file at path without
// loading any tensor.
func ReadConfig(path string) (Config, error) {
	src, err := openSource(path)
	if err != nil {
		return Config{}, err
	}
	defer src.close()
	return src.cfg, src.cfg.Validate()
}
