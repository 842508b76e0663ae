// Package sample picks the next token from logits on the client: greedy,
// temperature, top-k, top-p (nucleus) and a repetition penalty, driven by a
// seeded generator so that a seed reproduces the same choices bit for bit
// on any machine (spec/07-model.md §7).
//
// Order of operations: repetition penalty on the raw logits → temperature
// 0 means greedy (argmax, lowest id on ties) → divide by the temperature →
// top-k → softmax (float64, deterministic exp) → top-p → draw.
package sample

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/unfed/unfed/compute/tensor"
)

// Params configure a Sampler. The zero value is greedy decoding.
type Params struct {
	Temperature float64 // 0: greedy
	TopK        int     // keep the k most likely tokens; 0: all
	TopP        float64 // keep the smallest set with probability >= p; 0 or 1: all
	// RepetitionPenalty > 1 divides positive (multiplies negative) logits of
	// tokens in the recent window, as in CTRL and llama.cpp; 0 or 1: off.
	RepetitionPenalty float64
	RepeatWindow      int // recent tokens the penalty looks at; 0: 64
	Seed              uint64
}

// ErrParams reports invalid parameters.
var ErrParams = errors.New("sample: invalid parameters")

// Sampler draws tokens; it is not safe for concurrent use.
type Sampler struct {
	p      Params
	state  uint64
	recent []int
	idx    []int
	probs  []float64
}

// New returns a sampler for p.
func New(p Params) (*Sampler, error) {
	switch {
	case p.Temperature < 0 || math.IsNaN(p.Temperature) || math.IsInf(p.Temperature, 0):
		return nil, fmt.Errorf("%w: temperature %v", ErrParams, p.Temperature)
	case p.TopK < 0:
		return nil, fmt.Errorf("%w: top-k %d", ErrParams, p.TopK)
	case p.TopP < 0 || p.TopP > 1 || math.IsNaN(p.TopP):
		return nil, fmt.Errorf("%w: top-p %v", ErrParams, p.TopP)
	case p.RepetitionPenalty < 0 || math.IsNaN(p.RepetitionPenalty) || math.IsInf(p.RepetitionPenalty, 0):
		return nil, fmt.Errorf("%w: repetition penalty %v", ErrParams, p.RepetitionPenalty)
	case p.RepeatWindow < 0:
		return nil, fmt.Errorf("%w: repeat window %d", ErrParams, p.RepeatWindow)
	}
	if p.RepeatWindow == 0 {
		p.RepeatWindow = 64
	}
	s := &Sampler{p: p}
	s.state = p.Seed ^ 0x9e3779b97f4a7c15
	return s, nil
}

// Accept records a token of the sequence (prompt or generated) for the
// repetition penalty. Sample calls it for the tokens it returns.
func (s *Sampler) Accept(id int) {
	if s.p.RepetitionPenalty == 0 || s.p.RepetitionPenalty == 1 {
		return
	}
	s.recent = append(s.recent, id)
	if len(s.recent) > s.p.RepeatWindow {
		s.recent = s.recent[len(s.recent)-s.p.RepeatWindow:]
	}
}

// next returns the next output of splitmix64.
func (s *Sampler) next() uint64 {
	s.state += 0x9e3779b97f4a7c15
	z := s.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// uniform returns a float64 in [0, 1) with 53 random bits.
func (s *Sampler) uniform() float64 { return float64(s.next()>>11) / (1 << 53) }

// Sample picks a token from logits (which it may modify) and records it.
func (s *Sampler) Sample(logits []float32) (int, error) {
	if len(logits) == 0 {
		return 0, fmt.Errorf("%w: empty logits", ErrParams)
	}
	if rp := float32(s.p.RepetitionPenalty); rp != 0 && rp != 1 {
		seen := map[int]bool{}
		for _, id := range s.recent {
			if id < 0 || id >= len(logits) || seen[id] {
				continue
			}
			seen[id] = true
			if logits[id] > 0 {
				logits[id] /= rp
			} else {
				logits[id] *= rp
			}
		}
	}
	var id int
	if s.p.Temperature == 0 {
		id = Argmax(logits)
	} else {
		id = s.draw(logits)
	}
	s.Accept(id)
	return id, nil
}

// Argmax returns the index of the largest logit, the lowest on ties; NaN
// values are never chosen unless all are NaN.
func Argmax(logits []float32) int {
	best := 0
	for i, x := range logits {
		if x > logits[best] || (logits[best] != logits[best] && x == x) {
			best = i
		}
	}
	return best
}

func (s *Sampler) draw(logits []float32) int {
	n := len(logits)
	if cap(s.idx) < n {
		s.idx = make([]int, n)
		s.probs = make([]float64, n)
	}
	idx := s.idx[:n]
	for i := range idx {
		idx[i] = i
	}
	// Sort by logit descending, then id ascending: a total order, so the
	// result does not depend on the sort algorithm.
	key := func(i int) float64 {
		v := float64(logits[i])
		if v != v {
			return math.Inf(-1)
		}
		return v
	}
	sort.Slice(idx, func(a, b int) bool {
		ka, kb := key(idx[a]), key(idx[b])
		if ka != kb {
			return ka > kb
		}
		return idx[a] < idx[b]
	})
	if k := s.p.TopK; k > 0 && k < n {
		idx = idx[:k]
	}
	probs := s.probs[:len(idx)]
	m := key(idx[0])
	var sum float64
	for i, id := range idx {
		probs[i] = tensor.Exp((key(id) - m) / s.p.Temperature)
		sum += probs[i]
	}
	for i := range probs {
		probs[i] /= sum
	}
	if p := s.p.TopP; p > 0 && p < 1 {
		var c float64
		for i := range probs {
			c += probs[i]
			if c >= p {
				idx, probs = idx[:i+1], probs[:i+1]
				break
			}
		}
		var total float64
		for _, q := range probs {
			total += q
		}
		for i := range probs {
			probs[i] /= total
		}
	}
	r := s.uniform()
	var c float64
	for i, q := range probs {
		c += q
		if r < c {
			return idx[i]
		}
	}
	return idx[len(idx)-1]
}

// LogSoftmax returns the natural-log probabilities of the distribution
// logits define (temperature 1, no truncation), computed in float64 with
// the largest logit subtracted first. NaN logits get probability 0 (-Inf).
func LogSoftmax(logits []float32) []float64 {
	out := make([]float64, len(logits))
	m := math.Inf(-1)
	for _, x := range logits {
		if v := float64(x); v > m {
			m = v
		}
	}
	var sum float64
	for _, x := range logits {
		if v := float64(x); v == v {
			sum += math.Exp(v - m)
		}
	}
	lse := m + math.Log(sum)
	for i, x := range logits {
		if v := float64(x); v == v {
			out[i] = v - lse
		} else {
			out[i] = math.Inf(-1)
		}
	}
	return out
}
