package mpc

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unfed/unfed/compute/mpc/mpctest"
)

// randomWeights builds deterministic random weights of roughly the scale of
// a trained small model.
func randomWeights(c Config, seed uint64, bias bool) *Weights {
	r := rand.New(rand.NewPCG(seed, 1))
	vec := func(n int, s float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * s)
		}
		return v
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(1 + 0.1*r.NormFloat64())
		}
		return v
	}
	q, kv := c.qDim(), c.kvDim()
	w := &Weights{
		Config:    c,
		Embedding: vec(c.Vocab*c.Dim, 0.5),
		AttnNorm:  ones(c.Dim),
		Wq:        vec(q*c.Dim, 1.5/math.Sqrt(float64(c.Dim))),
		Wk:        vec(kv*c.Dim, 1.5/math.Sqrt(float64(c.Dim))),
		Wv:        vec(kv*c.Dim, 1/math.Sqrt(float64(c.Dim))),
		Wo:        vec(c.Dim*q, 1/math.Sqrt(float64(q))),
		FFNNorm:   ones(c.Dim),
		W1:        vec(c.FFN*c.Dim, 1/math.Sqrt(float64(c.Dim))),
		W2:        vec(c.Dim*c.FFN, 1/math.Sqrt(float64(c.FFN))),
		W3:        vec(c.FFN*c.Dim, 1/math.Sqrt(float64(c.Dim))),
	}
	if bias {
		w.Bq, w.Bk, w.Bv = vec(q, 0.3), vec(kv, 0.3), vec(kv, 0.3)
	}
	return w
}

var smallCfg = Config{Dim: 32, NHeads: 4, NKVHeads: 2, HeadDim: 8, FFN: 48, Vocab: 100, NormEps: 1e-5, RopeTheta: 10000, RopeAdjacentPairs: true}

// session runs the dealer and both parties over tokens and returns the
// reconstructed outputs, row-major.
type session struct {
	d      *Dealer
	pa, pb *Party
	ea, eb *mpctest.Peer
	// lazy makes the parties take PREPs without evaluating them ahead.
	lazy bool
	// stop, if set, makes them evaluate ahead with PrepUntil, each PREP
	// with a stop function of its own.
	stop func() func() bool
}

func newSession(t testing.TB, w *Weights, seed uint64, opt Options) *session {
	t.Helper()
	return newSessionWith(t, w.Config, seed, opt, func(r Role) (*Party, error) { return NewParty(r, w, opt) })
}

// newSessionWith is newSession with the parties made by party.
func newSessionWith(t testing.TB, c Config, seed uint64, opt Options, party func(Role) (*Party, error)) *session {
	t.Helper()
	d, err := NewDealer(c, opt.Params, mpctest.NewRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	pa, err := party(RoleA)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := party(RoleB)
	if err != nil {
		t.Fatal(err)
	}
	ea, eb := mpctest.Pipe(64)
	return &session{d: d, pa: pa, pb: pb, ea: ea, eb: eb}
}

// step runs one token through both parties concurrently.
func (s *session) step(t testing.TB, tok int) []float32 {
	t.Helper()
	out, err := s.stepErr(tok)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// prep takes the next step's PREP from the dealer and gives it to both
// parties.
func (s *session) prep() error {
	pa, pb, err := s.d.Prep()
	if err != nil {
		return err
	}
	take := func(p *Party, msg []byte) error {
		if s.stop != nil {
			return p.PrepUntil(msg, s.stop())
		}
		return p.Prep(msg, !s.lazy)
	}
	if err := take(s.pa, pa); err != nil {
		return fmt.Errorf("prep A: %w", err)
	}
	if err := take(s.pb, pb); err != nil {
		return fmt.Errorf("prep B: %w", err)
	}
	return nil
}

// stepErr is step for callers off the test goroutine.
func (s *session) stepErr(tok int) ([]float32, error) {
	if err := s.prep(); err != nil {
		return nil, err
	}
	ma, mb, err := s.d.Token(tok)
	if err != nil {
		return nil, err
	}
	oa, ob, errA, errB := s.run(ma, mb)
	if errA != nil || errB != nil {
		return nil, fmt.Errorf("step: A: %v, B: %v", errA, errB)
	}
	return Reconstruct(oa, ob)
}

func (s *session) run(ma, mb []byte) (oa, ob []byte, errA, errB error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		oa, errA = s.pa.Step(ctx, ma, s.ea)
		if errA != nil {
			cancel()
		}
	}()
	go func() {
		defer wg.Done()
		ob, errB = s.pb.Step(ctx, mb, s.eb)
		if errB != nil {
			cancel()
		}
	}()
	wg.Wait()
	return
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

func TestMPCBlockMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		bias bool
	}{
		{"llama", smallCfg, false},
		{"qwen2-neox-bias", func() Config { c := smallCfg; c.RopeAdjacentPairs = false; c.NKVHeads = 1; return c }(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := randomWeights(tc.cfg, 3, tc.bias)
			tokens := []int{1, 17, 42, 99, 0, 17, 63, 5, 5, 28, 71, 3}
			ref, err := ReferenceBlock0(w, tokens)
			if err != nil {
				t.Fatal(err)
			}
			s := newSession(t, w, 9, Options{})
			var worst float64
			for pos, tok := range tokens {
				got := s.step(t, tok)
				want := ref[pos*tc.cfg.Dim : (pos+1)*tc.cfg.Dim]
				d := maxAbsDiff(got, want)
				worst = math.Max(worst, d)
				if d > 0.03 {
					t.Fatalf("pos %d: max abs error %g\n got %v\nwant %v", pos, d, got[:6], want[:6])
				}
			}
			t.Logf("max abs error over %d positions: %.3g", len(tokens), worst)
			if s.pa.Pos() != len(tokens) || s.pa.Stats().Rounds != 12 {
				t.Fatalf("pos %d rounds %d", s.pa.Pos(), s.pa.Stats().Rounds)
			}
		})
	}
}

// TestPrepAheadSameBits: evaluating a PREP's lookup keys ahead of the token
// (and within a budget that covers only some of them) gives the bits of
// evaluating them during the step.
// TestPrepUntilStops: evaluating ahead stops as soon as stop reports true
// (a relay's "the STEP is here"), leaving the keys it did not reach to the
// step, and the step's output has the bits of evaluating everything in the
// step.
func TestPrepUntilStops(t *testing.T) {
	w := randomWeights(smallCfg, 4, false)
	tokens := []int{3, 14, 15}
	lazy := newSession(t, w, 8, Options{})
	lazy.lazy = true
	var want [][]float32
	for _, tk := range tokens {
		want = append(want, lazy.step(t, tk))
	}
	s := newSession(t, w, 8, Options{})
	const allow = 5
	s.stop = func() func() bool {
		var calls atomic.Int64
		return func() bool { return calls.Add(1) > allow }
	}
	for i, tk := range tokens {
		if err := s.prep(); err != nil {
			t.Fatal(err)
		}
		for _, p := range []*Party{s.pa, s.pb} {
			done := 0
			for _, y := range p.prep.ys {
				if y != nil {
					done++
				}
			}
			if len(p.prep.keys) <= allow || done == 0 || done > allow {
				t.Fatalf("position %d: %d of %d keys evaluated ahead; stop allowed at most %d", i, done, len(p.prep.keys), allow)
			}
		}
		ma, mb, err := s.d.Token(tk)
		if err != nil {
			t.Fatal(err)
		}
		oa, ob, errA, errB := s.run(ma, mb)
		if errA != nil || errB != nil {
			t.Fatalf("step: %v, %v", errA, errB)
		}
		got, err := Reconstruct(oa, ob)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want[i]) {
			t.Fatalf("position %d differs from evaluating in the step", i)
		}
	}
}

func TestPrepAheadSameBits(t *testing.T) {
	w := randomWeights(smallCfg, 4, false)
	tokens := []int{3, 14, 15, 92, 65, 35}
	run := func(lazy bool, budget int) [][]float32 {
		s := newSession(t, w, 8, Options{PrecomputeBytes: budget})
		s.lazy = lazy
		var out [][]float32
		for _, tk := range tokens {
			out = append(out, s.step(t, tk))
		}
		return out
	}
	want := run(true, 0)
	for _, c := range []struct {
		name   string
		budget int
	}{{"all ahead", 0}, {"some ahead", 64 << 10}, {"none ahead", -1}} {
		got := run(false, c.budget)
		for i := range want {
			if !slices.Equal(got[i], want[i]) {
				t.Fatalf("%s: position %d differs from evaluating in the step", c.name, i)
			}
		}
	}
}
