package model

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/unfed/unfed/compute/tensor"
)

// Typed errors callers branch on.
var (
	// ErrTooManySessions: the shard already has Limits.MaxSessions open sessions.
	ErrTooManySessions = errors.New("model: too many sessions")
	// ErrContextTooLong: a forward pass would go past the session's context limit.
	ErrContextTooLong = errors.New("model: context too long")
	// ErrOutOfMemoryBudget: growing a KV cache would exceed Limits.MemoryBudget.
	ErrOutOfMemoryBudget = errors.New("model: out of memory budget")
	// ErrClosed: the shard or session has been closed.
	ErrClosed = errors.New("model: closed")
)

// Limits bound what sessions on one shard may use. The zero value means no
// limit on sessions or memory and the model's declared context length.
type Limits struct {
	MaxSessions  int   // open sessions at once; 0: unlimited
	MaxContext   int   // positions per session; 0: the model's context length
	MemoryBudget int64 // bytes of KV cache over all sessions; 0: unlimited
}

// ShardOptions select the layer range and resources of a shard.
type ShardOptions struct {
	First   int    // first layer (inclusive)
	Last    int    // last layer (exclusive); 0 means the model's layer count
	Threads int    // goroutines per matrix product; 0: GOMAXPROCS
	Limits  Limits // session limits
}

// Shard is a loaded contiguous layer range [First, Last) of a model. The
// shard with First == 0 holds the token embedding; the shard with
// Last == NLayers holds the final norm and the output head. Only the shard's
// own tensors are touched, so its resident memory is proportional to its
// layers. A Shard is safe for concurrent use by many sessions.
type Shard struct {
	cfg         Config
	first, last int
	threads     int
	limits      Limits
	format      Format

	embd    *tensor.Mat // vocab×dim, first shard only
	layers  []*layerWeights
	outNorm []float32   // last shard only
	output  *tensor.Mat // vocab×dim, last shard only
	freqs   []float64   // rope frequency per rotated pair

	src *source

	// mu guards closed; forward passes hold it for reading so Close cannot
	// unmap weights under them.
	mu     sync.RWMutex
	closed bool

	acct     sync.Mutex // guards sessions, memUsed, spares and noSpares
	sessions int
	memUsed  int64
	spares   []*arena // buffers of closed sessions, for the next ones (arena.go)
	noSpares bool     // set by Close
}

// Load opens the model file at path (GGUF or llama2.c) and loads the layer
// range opts selects. Load(path, ShardOptions{}) loads the whole model.
func Load(path string, opts ShardOptions) (*Shard, error) {
	src, err := openSource(path)
	if err != nil {
		return nil, err
	}
	s, err := newShard(src, opts)
	if err != nil {
		src.close()
		return nil, err
	}
	return s, nil
}

func newShard(src *source, opts ShardOptions) (*Shard, error) {
	cfg := src.cfg
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	first, last := opts.First, opts.Last
	if last == 0 {
		last = cfg.NLayers
	}
	if first < 0 || first >= last || last > cfg.NLayers {
		return nil, fmt.Errorf("model: layer range [%d, %d) is not inside [0, %d)", first, last, cfg.NLayers)
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	lim := opts.Limits
	if lim.MaxContext <= 0 || lim.MaxContext > cfg.ContextLength {
		lim.MaxContext = cfg.ContextLength
	}
	s := &Shard{cfg: cfg, first: first, last: last, threads: threads, limits: lim, src: src, format: src.format}
	var err error
	if first == 0 {
		if s.embd, err = src.loadMat(nameEmbedding, cfg.Vocab, cfg.Dim); err != nil {
			return nil, err
		}
	}
	for l := first; l < last; l++ {
		w, err := src.loadLayer(l)
		if err != nil {
			return nil, err
		}
		for _, m := range []*tensor.Mat{w.wq, w.wk, w.wv, w.wo, w.gate, w.up, w.down} {
			if err := src.pack(m); err != nil {
				return nil, err
			}
		}
		s.layers = append(s.layers, w)
	}
	if last == cfg.NLayers {
		if s.outNorm, err = src.loadVec(nameOutNorm, cfg.Dim); err != nil {
			return nil, err
		}
		name := nameOutput
		if cfg.TiedOutput {
			name = nameEmbedding
		}
		if s.output, err = src.loadMat(name, cfg.Vocab, cfg.Dim); err != nil {
			return nil, err
		}
		if err := src.pack(s.output); err != nil {
			return nil, err
		}
		if s.embd != nil && cfg.TiedOutput {
			// The same tensor: read embedding rows from the packed copy (the
			// same values, §5.2). The file's pages were dropped as it was
			// packed, and a row looked up in the file would fault them in
			// again, a whole large folio (up to 2 MiB) per token id on a
			// page cache that has them: 100 MB more resident over 64 ids.
			s.embd = s.output
		}
	}
	s.freqs = ropeFreqs(cfg)
	return s, nil
}

// Config returns the model's hyperparameters.
func (s *Shard) Config() Config { return s.cfg }

// First returns the first layer of the shard.
func (s *Shard) First() int { return s.first }

// Last returns the layer after the shard's last layer.
func (s *Shard) Last() int { return s.last }

// IsFirst reports whether the shard holds the token embedding.
func (s *Shard) IsFirst() bool { return s.first == 0 }

// IsLast reports whether the shard produces logits.
func (s *Shard) IsLast() bool { return s.last == s.cfg.NLayers }

// Format returns the format of the file the shard was loaded from.
func (s *Shard) Format() Format { return s.format }

// Limits returns the effective session limits.
func (s *Shard) Limits() Limits { return s.limits }

// MemoryUsed returns the bytes of KV cache currently reserved by sessions.
func (s *Shard) MemoryUsed() int64 {
	s.acct.Lock()
	defer s.acct.Unlock()
	return s.memUsed
}

// Close releases the model file. It waits for running forward passes; later
// calls on the shard or its sessions return ErrClosed.
func (s *Shard) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.embd, s.layers, s.output = nil, nil, nil
	s.acct.Lock()
	s.spares, s.noSpares = nil, true
	s.acct.Unlock()
	return s.src.close()
}

// reserve accounts delta bytes of KV cache against the budget.
func (s *Shard) reserve(delta int64) error {
	s.acct.Lock()
	defer s.acct.Unlock()
	if s.limits.MemoryBudget > 0 && s.memUsed+delta > s.limits.MemoryBudget {
		return fmt.Errorf("%w: %d bytes in use, %d more requested, budget %d", ErrOutOfMemoryBudget,
			s.memUsed, delta, s.limits.MemoryBudget)
	}
	s.memUsed += delta
	return nil
}

// ropeFreqs returns theta^(-2i/headDim) for each rotated pair i.
func ropeFreqs(cfg Config) []float64 {
	half := cfg.HeadDim / 2
	f := make([]float64, half)
	for i := range f {
		f[i] = 1 / tensor.Pow(cfg.RopeTheta, float64(2*i)/float64(cfg.HeadDim))
	}
	return f
}
