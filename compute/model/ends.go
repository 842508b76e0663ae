package model

import (
	"fmt"
	"runtime"
	"slices"

	"github.com/unfed/unfed/compute/tensor"
)

// Ends are the two ends of a model that a client of a confidential circuit
// computes itself (spec/10-confidential.md §6): the token embedding, and the
// final norm with the output head. With them the client never sends a token
// id and never receives logits; every layer in between runs elsewhere on
// secret shares. Safe for concurrent use.
type Ends struct {
	cfg     Config
	embd    *tensor.Mat
	outNorm []float32
	output  *tensor.Mat
	threads int
	src     *source
}

// LoadEnds opens the model file at path and loads only its embedding, final
// norm and output head.
func LoadEnds(path string) (*Ends, error) {
	src, err := openSource(path)
	if err != nil {
		return nil, err
	}
	e, err := loadEnds(src)
	if err != nil {
		src.close()
		return nil, err
	}
	return e, nil
}

func loadEnds(src *source) (*Ends, error) {
	cfg := src.cfg
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Ends{cfg: cfg, src: src, threads: runtime.GOMAXPROCS(0)}
	var err error
	if e.embd, err = src.loadMat(nameEmbedding, cfg.Vocab, cfg.Dim); err != nil {
		return nil, err
	}
	if e.outNorm, err = src.loadVec(nameOutNorm, cfg.Dim); err != nil {
		return nil, err
	}
	name := nameOutput
	if cfg.TiedOutput {
		name = nameEmbedding
	}
	if e.output, err = src.loadMat(name, cfg.Vocab, cfg.Dim); err != nil {
		return nil, err
	}
	// The head is a product matrix, as on a last shard: in the kernels'
	// layout (a Q8_0 head of the qwen2.5-0.5B shape, 136 MB, took 212 ms a
	// token unpacked and 19 ms packed, issue 16: the client's share of
	// every token), the file's pages dropped as it is packed.
	if err := src.pack(e.output); err != nil {
		return nil, err
	}
	if cfg.TiedOutput {
		// The same tensor: embedding rows come from the packed copy (the
		// same values), as a first shard's do (shard.go).
		e.embd = e.output
	}
	return e, nil
}

// Config returns the model's hyperparameters.
func (e *Ends) Config() Config { return e.cfg }

// Embed returns the embedding row of token id: the residual stream entering
// layer 0, bit for bit what a first shard computes.
func (e *Ends) Embed(id int) ([]float32, error) {
	if id < 0 || id >= e.cfg.Vocab {
		return nil, fmt.Errorf("model: token %d outside the vocabulary of %d", id, e.cfg.Vocab)
	}
	row := make([]float32, e.cfg.Dim)
	e.embd.Row(row, id)
	return row, nil
}

// AppendEmbed appends token id's embedding row to dst (Embed without a new
// row per token: a client embeds a whole prompt into one reused buffer).
func (e *Ends) AppendEmbed(dst []float32, id int) ([]float32, error) {
	if id < 0 || id >= e.cfg.Vocab {
		return dst, fmt.Errorf("model: token %d outside the vocabulary of %d", id, e.cfg.Vocab)
	}
	n := len(dst)
	dst = slices.Grow(dst, e.cfg.Dim)[:n+e.cfg.Dim]
	e.embd.Row(dst[n:], id)
	return dst, nil
}

// Logits applies the final norm and the output head to one hidden state
// (the residual stream after the last layer), as a last shard does.
func (e *Ends) Logits(hidden []float32) ([]float32, error) {
	if len(hidden) != e.cfg.Dim {
		return nil, fmt.Errorf("model: hidden state of %d values, want %d", len(hidden), e.cfg.Dim)
	}
	xb := make([]float32, e.cfg.Dim)
	rmsNorm(xb, hidden, e.outNorm, e.cfg.NormEps)
	out := make([]float32, e.cfg.Vocab)
	if err := tensor.MatMul(out, e.output, xb, 1, e.threads); err != nil {
		return nil, err
	}
	return out, nil
}

// Close releases the model file.
func (e *Ends) Close() error {
	e.src.close()
	return nil
}
