package mpc

import (
	"errors"
	"math"
	"runtime"
	"sync"
	"testing"
)

// TestPreparedShared: sessions running concurrently on one Prepared give
// the bits of sessions that each prepared their own weights, and a session
// whose Params differ from the prepared ones is refused.
func TestPreparedShared(t *testing.T) {
	c := Config{Dim: 32, NHeads: 4, NKVHeads: 2, HeadDim: 8, FFN: 64, Vocab: 96, NormEps: 1e-5, RopeTheta: 10000}
	w := randomWeights(c, 11, true)
	pw, err := Prepare(w, Params{})
	if err != nil {
		t.Fatal(err)
	}
	tokens := [][]int{{3, 17, 90, 4}, {50, 1, 1, 77}}
	want := make([][][]float32, len(tokens))
	for i, toks := range tokens {
		s := newSession(t, w, uint64(100+i), Options{})
		for _, tok := range toks {
			want[i] = append(want[i], s.step(t, tok))
		}
	}
	got := make([][][]float32, len(tokens))
	var wg sync.WaitGroup
	for i, toks := range tokens {
		s := newSessionWith(t, c, uint64(100+i), Options{}, func(r Role) (*Party, error) { return NewPartyPrepared(r, pw, Options{}) })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, tok := range toks {
				out, err := s.stepErr(tok)
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = append(got[i], out)
			}
		}()
	}
	wg.Wait()
	for i := range tokens {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("session %d: %d steps, want %d", i, len(got[i]), len(want[i]))
		}
		for k := range want[i] {
			for j := range want[i][k] {
				if math.Float32bits(got[i][k][j]) != math.Float32bits(want[i][k][j]) {
					t.Fatalf("session %d step %d element %d: %v on shared weights, %v on its own", i, k, j, got[i][k][j], want[i][k][j])
				}
			}
		}
	}
	if _, err := NewPartyPrepared(RoleA, pw, Options{Params: Params{SiLUBits: 10}}); !errors.Is(err, ErrConfig) {
		t.Fatalf("session with other Params: %v, want ErrConfig", err)
	}
	if _, err := NewPartyPrepared(RoleA, pw, Options{Params: Params{SiLUBits: 9}}); err != nil {
		t.Fatalf("session with the default Params spelt out: %v", err)
	}
}

// TestPreparedTableOffHeap: the embedding table (Vocab × 2·Dim int16) is not
// on the Go heap, so it does not count toward the collector's heap goal.
func TestPreparedTableOffHeap(t *testing.T) {
	c := Config{Dim: 512, NHeads: 8, NKVHeads: 8, HeadDim: 64, FFN: 64, Vocab: 8192, NormEps: 1e-5, RopeTheta: 10000}
	w := randomWeights(c, 5, false)
	const table = 8192 * 2 * 512 * 2 // 16 MiB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	pw, err := Prepare(w, Params{})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > table/2 {
		t.Fatalf("the live heap grew by %d bytes with a %d-byte table", grew, table)
	}
	// The table is there and holds the embedding at scale Frac - shift.
	sh := int(pw.p.shift[2*3])
	if got, want := pw.p.table[3*2*c.Dim+7], int16(math.Round(math.Ldexp(float64(w.Embedding[3*c.Dim+7]), Frac-sh))); got != want {
		t.Fatalf("table[3][7] = %d, want %d (shift %d)", got, want, sh)
	}
	runtime.KeepAlive(w)
	runtime.KeepAlive(pw)
}
