package mpc

import (
	"fmt"

	"github.com/unfed/unfed/compute/model"
)

// ConfigOf derives the MPC stage's configuration from a model's: the client
// (as dealer) needs only this shape, never the weights.
func ConfigOf(c model.Config) (Config, error) {
	if c.Arch != model.ArchLlama && c.Arch != model.ArchQwen2 {
		return Config{}, fmt.Errorf("%w: architecture %q", ErrConfig, c.Arch)
	}
	mc := Config{Dim: c.Dim, NHeads: c.NHeads, NKVHeads: c.NKVHeads, HeadDim: c.HeadDim, FFN: c.FFNDim,
		Vocab: c.Vocab, NormEps: c.NormEps, RopeTheta: float32(c.RopeTheta),
		RopeAdjacentPairs: c.RopeStyle == model.RopeAdjacent}
	if err := mc.Validate(); err != nil {
		return Config{}, err
	}
	return mc, nil
}

// LoadWeights reads what a party computes on from a model file (GGUF or
// llama2.c): the float32 embedding table and every weight of block 0,
// through compute/model's exports.
func LoadWeights(path string) (*Weights, error) {
	emb, c, err := model.EmbeddingF32(path)
	if err != nil {
		return nil, fmt.Errorf("mpc: embedding: %w", err)
	}
	l, _, err := model.LoadLayerWeightsF32(path, 0)
	if err != nil {
		return nil, fmt.Errorf("mpc: block 0: %w", err)
	}
	mc, err := ConfigOf(c)
	if err != nil {
		return nil, err
	}
	return &Weights{
		Config:    mc,
		Embedding: emb,
		AttnNorm:  l.AttnNorm, FFNNorm: l.FFNNorm,
		Wq: l.Wq, Wk: l.Wk, Wv: l.Wv, Wo: l.Wo,
		Bq: l.Bq, Bk: l.Bk, Bv: l.Bv,
		W1: l.WGate, W2: l.WDown, W3: l.WUp,
	}, nil
}
