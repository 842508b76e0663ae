package model

import (
	"math"
	"testing"

	"github.com/unfed/unfed/compute/modeltest"
)

// TestSpareBuffersSameBits: a session that grows into a closed session's KV
// cache and scratch (left full of another prompt's values) gives the same
// bits as one on a fresh shard, and it does reuse them; a closed shard keeps
// none.
func TestSpareBuffersSameBits(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	fresh, err := Load(path, ShardOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	used, err := Load(path, ShardOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer used.Close()

	long := make([]int, 150)
	for i := range long {
		long[i] = (i*37 + 11) % 512
	}
	prev, err := used.NewSession(SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prev.ForwardTokens(long, 0); err != nil {
		t.Fatal(err)
	}
	k0 := &prev.k[0][:1][0]
	prev.Close()
	if len(used.spares) != 1 {
		t.Fatalf("%d spare arenas after a close, want 1", len(used.spares))
	}

	short := []int{1, 403, 407, 1191 % 512, 263, 2}
	run := func(s *Shard) ([]float32, *Session) {
		ss, err := s.NewSession(SessionOptions{AllLogits: true})
		if err != nil {
			t.Fatal(err)
		}
		var all []float32
		// A batch, then single steps, as a relay runs prefill and decode.
		out, err := ss.ForwardTokens(short[:4], 0)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, out...)
		for p := 4; p < len(short); p++ {
			out, err := ss.ForwardTokens(short[p:p+1], p)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, out...)
		}
		return all, ss
	}
	want, _ := run(fresh)
	got, ss := run(used)
	if &ss.k[0][:1][0] != k0 {
		t.Fatal("the new session did not reuse the closed session's KV cache")
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("logit %d: %v with spare buffers, %v fresh", i, got[i], want[i])
		}
	}
	ss.Close()
	used.Close()
	if len(used.spares) != 0 {
		t.Fatal("a closed shard keeps spare arenas")
	}
}

// TestSpareBuffersWithinBudget: with a memory budget, a shard keeps spare
// buffers only up to an eighth of it.
func TestSpareBuffersWithinBudget(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	for _, c := range []struct {
		budget int64
		keep   int
	}{{0, 1}, {64 << 20, 1}, {1 << 20, 0}} {
		sh, err := Load(path, ShardOptions{Threads: 1, Limits: Limits{MemoryBudget: c.budget}})
		if err != nil {
			t.Fatal(err)
		}
		ss, err := sh.NewSession(SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int, 200) // a KV cache of hundreds of KiB, over 1 MiB / 8
		for i := range ids {
			ids[i] = i % 512
		}
		if _, err := ss.ForwardTokens(ids, 0); err != nil {
			t.Fatal(err)
		}
		ss.Close()
		if len(sh.spares) != c.keep {
			t.Errorf("budget %d: %d spare arenas, want %d", c.budget, len(sh.spares), c.keep)
		}
		sh.Close()
	}
}

// TestForwardActivationsIntoSameBits: a middle shard's pass into a reused
// buffer (left full of another pass's values) gives ForwardActivations'
// bits and writes into that buffer rather than a new one.
func TestForwardActivationsIntoSameBits(t *testing.T) {
	path := modeltest.Path(t, "stories260K.gguf")
	sh, err := Load(path, ShardOptions{First: 1, Last: 3, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	dim := sh.Config().Dim
	x := make([]float32, 70*dim) // over maxBatch: two batches
	for i := range x {
		x[i] = float32((i*31)%97-48) / 64
	}
	a, err := sh.NewSession(SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	want, err := a.ForwardActivations(x, 70, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sh.NewSession(SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	buf := make([]float32, 80*dim)
	for i := range buf {
		buf[i] = 1e9
	}
	got, err := b.ForwardActivationsInto(buf[:5], x, 70, 0)
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &buf[0] {
		t.Fatal("ForwardActivationsInto did not write into the buffer given")
	}
	if len(got) != len(want) {
		t.Fatalf("%d values, want %d", len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("value %d: %v into a buffer, %v new", i, got[i], want[i])
		}
	}
}
