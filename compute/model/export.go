package model

import (
	"fmt"

	"github.com/unfed/unfed/compute/tensor"
)

// LayerF32 is one transformer block's weights as plain float32, for code
// that computes a block outside the engine (the MPC pair computes block 0 on
// secret shares). Matrices are row-major, one row per output: Wq is
// QDim×Dim, Wk and Wv KVDim×Dim, Wo Dim×QDim, WGate and WUp FFNDim×Dim,
// WDown Dim×FFNDim. Bq, Bk, Bv are nil without QKV biases.
type LayerF32 struct {
	AttnNorm, FFNNorm []float32
	Wq, Wk, Wv, Wo    []float32
	Bq, Bk, Bv        []float32
	WGate, WUp, WDown []float32
}

// LoadLayerWeightsF32 dequantises the weights of block layer of the model
// file at path, with its configuration.
func LoadLayerWeightsF32(path string, layer int) (*LayerF32, Config, error) {
	src, err := openSource(path)
	if err != nil {
		return nil, Config{}, err
	}
	defer src.close()
	cfg := src.cfg
	if err := cfg.Validate(); err != nil {
		return nil, cfg, err
	}
	if layer < 0 || layer >= cfg.NLayers {
		return nil, cfg, fmt.Errorf("model: layer %d outside [0, %d)", layer, cfg.NLayers)
	}
	w, err := src.loadLayer(layer)
	if err != nil {
		return nil, cfg, err
	}
	return &LayerF32{
		AttnNorm: w.attnNorm, FFNNorm: w.ffnNorm,
		Wq: matF32(w.wq), Wk: matF32(w.wk), Wv: matF32(w.wv), Wo: matF32(w.wo),
		Bq: w.bq, Bk: w.bk, Bv: w.bv,
		WGate: matF32(w.gate), WUp: matF32(w.up), WDown: matF32(w.down),
	}, cfg, nil
}

// EmbeddingF32 returns the token embedding table (Vocab×Dim, row-major) of
// the model file at path as float32, with the configuration.
func EmbeddingF32(path string) ([]float32, Config, error) {
	src, err := openSource(path)
	if err != nil {
		return nil, Config{}, err
	}
	defer src.close()
	if err := src.cfg.Validate(); err != nil {
		return nil, src.cfg, err
	}
	m, err := src.loadMat(nameEmbedding, src.cfg.Vocab, src.cfg.Dim)
	if err != nil {
		return nil, src.cfg, err
	}
	return matF32(m), src.cfg, nil
}

// matF32 copies a matrix out as float32 (the source mapping is closed after).
func matF32(m *tensor.Mat) []float32 {
	out := make([]float32, m.Rows*m.Cols)
	for r := 0; r < m.Rows; r++ {
		m.Row(out[r*m.Cols:(r+1)*m.Cols], r)
	}
	return out
}

// RopeFreqs returns the RoPE frequency theta^(-2i/HeadDim) of each rotated
// pair i, computed as the engine computes them.
func RopeFreqs(cfg Config) []float64 { return ropeFreqs(cfg) }

// RopeRotate rotates every head (HeadDim elements each) of v in place for
// position pos, exactly as the engine's forward pass does.
func RopeRotate(cfg Config, v []float32, pos int) {
	f := ropeFreqs(cfg)
	cs, sn := make([]float32, len(f)), make([]float32, len(f))
	for i, fr := range f {
		s, c := tensor.Sincos(float64(pos) * fr)
		cs[i], sn[i] = float32(c), float32(s)
	}
	rope(v, cfg.HeadDim, cfg.RopeStyle, cs, sn)
}
