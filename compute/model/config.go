package model

import (
	"errors"
	"fmt"
	"math"
)

// Architectures the engine runs.
const (
	ArchLlama = "llama"
	ArchQwen2 = "qwen2"
)

// RopeStyle says which elements of a head RoPE rotates together.
type RopeStyle int

const (
	// RopeAdjacent rotates pairs (2i, 2i+1) with frequency theta^(-2i/d):
	// llama2.c, Meta's layout and ggml's "normal" mode (GGUF llama).
	RopeAdjacent RopeStyle = iota
	// RopeNeox rotates pairs (i, i+d/2) with frequency theta^(-2i/d):
	// the Hugging Face rotate_half layout and ggml's NEOX mode (qwen2).
	RopeNeox
)

func (r RopeStyle) String() string {
	if r == RopeNeox {
		return "neox"
	}
	return "adjacent"
}

// Limits on hyperparameters a model file may declare.
const (
	MaxDim     = 1 << 16
	MaxLayers  = 1024
	MaxHeads   = 1024
	MaxVocab   = 1 << 22
	MaxContext = 1 << 20
)

// ErrConfig is wrapped by errors about invalid or unsupported hyperparameters.
var ErrConfig = errors.New("model: invalid configuration")

// Config holds the hyperparameters of a decoder-only transformer.
type Config struct {
	Arch          string    // ArchLlama or ArchQwen2
	Dim           int       // embedding length
	NLayers       int       // transformer blocks
	NHeads        int       // query heads
	NKVHeads      int       // key/value heads (grouped-query attention)
	HeadDim       int       // elements per head
	FFNDim        int       // feed-forward hidden length
	Vocab         int       // vocabulary size (rows of the embedding)
	ContextLength int       // maximum positions the model declares
	NormEps       float32   // RMSNorm epsilon
	RopeTheta     float64   // RoPE frequency base
	RopeStyle     RopeStyle // which pairs RoPE rotates
	QKVBias       bool      // q, k and v projections have biases (qwen2)
	TiedOutput    bool      // the output head is the token embedding
}

// QDim is the length of the query projection (NHeads*HeadDim).
func (c Config) QDim() int { return c.NHeads * c.HeadDim }

// KVDim is the length of a key or value projection (NKVHeads*HeadDim).
func (c Config) KVDim() int { return c.NKVHeads * c.HeadDim }

// Validate checks the hyperparameters against the engine's limits.
func (c Config) Validate() error {
	switch {
	case c.Arch != ArchLlama && c.Arch != ArchQwen2:
		return fmt.Errorf("%w: architecture %q (want llama or qwen2)", ErrConfig, c.Arch)
	case c.Dim <= 0 || c.Dim > MaxDim:
		return fmt.Errorf("%w: dim %d", ErrConfig, c.Dim)
	case c.NLayers <= 0 || c.NLayers > MaxLayers:
		return fmt.Errorf("%w: %d layers", ErrConfig, c.NLayers)
	case c.NHeads <= 0 || c.NHeads > MaxHeads || c.NKVHeads <= 0 || c.NKVHeads > c.NHeads || c.NHeads%c.NKVHeads != 0:
		return fmt.Errorf("%w: %d heads, %d kv heads", ErrConfig, c.NHeads, c.NKVHeads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0 || c.HeadDim > MaxDim || c.NHeads*c.HeadDim > 4*MaxDim:
		return fmt.Errorf("%w: head dim %d", ErrConfig, c.HeadDim)
	case c.FFNDim <= 0 || c.FFNDim > 4*MaxDim:
		return fmt.Errorf("%w: feed-forward length %d", ErrConfig, c.FFNDim)
	case c.Vocab <= 0 || c.Vocab > MaxVocab:
		return fmt.Errorf("%w: vocabulary %d", ErrConfig, c.Vocab)
	case c.ContextLength <= 0 || c.ContextLength > MaxContext:
		return fmt.Errorf("%w: context length %d", ErrConfig, c.ContextLength)
	case !(c.NormEps > 0 && c.NormEps < 1):
		return fmt.Errorf("%w: norm epsilon %v", ErrConfig, c.NormEps)
	case !(c.RopeTheta > 1 && c.RopeTheta < 1e12) || math.IsNaN(c.RopeTheta):
		return fmt.Errorf("%w: rope base %v", ErrConfig, c.RopeTheta)
	}
	return nil
}
