package model

import (
	"fmt"

	"github.com/unfed/unfed/compute/tensor"
)

// layerWeights are one transformer block's tensors. Matrices are views into
// the model file; norm vectors and biases are small float32 copies.
type layerWeights struct {
	attnNorm, ffnNorm []float32
	wq, wk, wv, wo    *tensor.Mat
	bq, bk, bv        []float32 // nil without QKV biases
	gate, up, down    *tensor.Mat
}

// Tensor names, GGUF conventions.
func blkName(l int, what string) string { return fmt.Sprintf("blk.%d.%s", l, what) }

const (
	nameEmbedding = "token_embd.weight"
	nameOutNorm   = "output_norm.weight"
	nameOutput    = "output.weight"
)

// layerTensorNames lists the tensors of block l for cfg, in manifest order.
func layerTensorNames(cfg Config, l int) []string {
	names := []string{
		blkName(l, "attn_norm.weight"), blkName(l, "attn_q.weight"), blkName(l, "attn_k.weight"),
		blkName(l, "attn_v.weight"), blkName(l, "attn_output.weight"),
	}
	if cfg.QKVBias {
		names = append(names, blkName(l, "attn_q.bias"), blkName(l, "attn_k.bias"), blkName(l, "attn_v.bias"))
	}
	return append(names, blkName(l, "ffn_norm.weight"), blkName(l, "ffn_gate.weight"),
		blkName(l, "ffn_up.weight"), blkName(l, "ffn_down.weight"))
}

// loadMat fetches name as a rows×cols matrix (GGUF dims [cols, rows]).
func (s *source) loadMat(name string, rows, cols int) (*tensor.Mat, error) {
	t, ok := s.get(name)
	if !ok {
		return nil, fmt.Errorf("model: tensor %s is missing", name)
	}
	if len(t.Dims) != 2 || t.Dims[0] != uint64(cols) || t.Dims[1] != uint64(rows) {
		return nil, fmt.Errorf("model: tensor %s has shape %v, want [%d %d]", name, t.Dims, cols, rows)
	}
	if !t.Type.Supported() {
		return nil, fmt.Errorf("model: tensor %s: %w: %v", name, tensor.ErrUnsupportedType, t.Type)
	}
	m, err := tensor.NewMat(t.Type, rows, cols, t.Data)
	if err != nil {
		return nil, fmt.Errorf("model: tensor %s: %w", name, err)
	}
	return m, nil
}

// pack prepares a product matrix for the kernels (a Q8_0 matrix is copied
// into their layout, tensor.Mat.Pack) and lets the file's pages of a packed
// matrix go as they are copied, so its weights are resident once.
func (s *source) pack(m *tensor.Mat) error {
	var release func([]byte)
	if s.mapped {
		release = dropPages
	}
	return m.PackReleasing(release)
}

// loadVec fetches name as a float32 vector of n elements (a copy).
func (s *source) loadVec(name string, n int) ([]float32, error) {
	t, ok := s.get(name)
	if !ok {
		return nil, fmt.Errorf("model: tensor %s is missing", name)
	}
	if len(t.Dims) != 1 || t.Dims[0] != uint64(n) {
		return nil, fmt.Errorf("model: tensor %s has shape %v, want [%d]", name, t.Dims, n)
	}
	v := make([]float32, n)
	if err := tensor.DequantRow(v, t.Type, t.Data); err != nil {
		return nil, fmt.Errorf("model: tensor %s: %w", name, err)
	}
	return v, nil
}

func (s *source) loadLayer(l int) (*layerWeights, error) {
	c := s.cfg
	w := &layerWeights{}
	var err error
	vec := func(dst *[]float32, what string, n int) {
		if err == nil {
			*dst, err = s.loadVec(blkName(l, what), n)
		}
	}
	mat := func(dst **tensor.Mat, what string, rows, cols int) {
		if err == nil {
			*dst, err = s.loadMat(blkName(l, what), rows, cols)
		}
	}
	vec(&w.attnNorm, "attn_norm.weight", c.Dim)
	mat(&w.wq, "attn_q.weight", c.QDim(), c.Dim)
	mat(&w.wk, "attn_k.weight", c.KVDim(), c.Dim)
	mat(&w.wv, "attn_v.weight", c.KVDim(), c.Dim)
	mat(&w.wo, "attn_output.weight", c.Dim, c.QDim())
	if c.QKVBias {
		vec(&w.bq, "attn_q.bias", c.QDim())
		vec(&w.bk, "attn_k.bias", c.KVDim())
		vec(&w.bv, "attn_v.bias", c.KVDim())
	}
	vec(&w.ffnNorm, "ffn_norm.weight", c.Dim)
	mat(&w.gate, "ffn_gate.weight", c.FFNDim, c.Dim)
	mat(&w.up, "ffn_up.weight", c.FFNDim, c.Dim)
	mat(&w.down, "ffn_down.weight", c.Dim, c.FFNDim)
	if err != nil {
		return nil, err
	}
	return w, nil
}
